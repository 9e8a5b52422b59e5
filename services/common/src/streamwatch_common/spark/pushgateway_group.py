"""One job's group on a Prometheus Pushgateway, pushed from a daemon thread of its own.

The Pushgateway keeps the last value of a batch job that Prometheus cannot scrape in time; the alert
rules then compare ``visits_sync_duration`` with the SLA and ``push_time_seconds`` with the clock.

A batch's gauges replace the whole group (one group per ``job`` + ``instance``), and beside them goes a
histogram of every batch's duration since the query started in this pod (``visits_sync_batch_seconds`` /
``streaming_batch_seconds``, in seconds, the job's SLA a bucket bound): a batch whose push a newer one
superseded, or that came and went between two scrapes, is still counted there. The group is the job's,
not the pod's: ``instance`` is the same for every pod of the job (the chart sets
``<namespace>/<deployment>``), so a new pod's pushes replace what the previous pod pushed, and nothing of
a pod that is gone (rolled out, or killed without a chance to clean up) stays behind for the alerts to
judge. A takeover is an empty push: the previous pod's last batch leaves at once, while the new pod is
alive (the push time is fresh), even before its first batch. The pod that pushed is a label of every
gauge, ``pod``, for humans; it is not part of the grouping key. An idle heartbeat (Unix time) is only
added to the group, which refreshes ``push_time_seconds`` and keeps the last batch's values.

Counted on the process's own ``/metrics`` (label ``job``): ``streamwatch_pushes_total`` (successful
pushes), ``streamwatch_push_failures_total`` (failed pushes), ``streamwatch_pushes_superseded_total``
(a newer batch arrived before the previous one could be pushed; only the newest is pushed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    push_to_gateway,
    pushadd_to_gateway,
)
from prometheus_client.metrics_core import Metric

from streamwatch_common.spark.batch_metric_names import HELP, BatchMetricNames
from streamwatch_common.spark.batch_metrics import BatchMetrics

logger = logging.getLogger(__name__)

PUSHES = Counter("streamwatch_pushes_total", "Successful pushes to the Pushgateway.", ["job"])
PUSH_FAILURES = Counter("streamwatch_push_failures_total", "Failed pushes to the Pushgateway.", ["job"])
PUSHES_SUPERSEDED = Counter(
    "streamwatch_pushes_superseded_total",
    "Batch metrics replaced by a newer batch before they could be pushed.",
    ["job"],
)


class PushgatewayGroup:
    """Pushes one job's group to a Pushgateway on a daemon thread: callers only hand over what is to be
    pushed (the newest batch wins), so a slow or unreachable Pushgateway costs them nothing, and each push
    gives up after ``timeout`` seconds. A failed push is logged and counted, never raised."""

    def __init__(
        self,
        pushgateway_url: str,
        job: str,
        instance: str,
        timeout: float,
        *,
        names: BatchMetricNames,
        pod: str | None,
        buckets: Sequence[float],
    ) -> None:
        self.pushgateway_url = pushgateway_url
        self.job = job
        self.names = names
        # Grouping key: stable across the job's pods. The pod is a plain label of every gauge.
        self.grouping_key = {"instance": instance}
        self.pod = pod
        self.timeout = timeout
        # Outside any registry: each push collects it into the registry of that push.
        self._durations = Histogram(
            names.duration_histogram, HELP[names.duration_histogram], ["pod"] if pod else [],
            buckets=buckets, registry=None,
        )  # fmt: skip
        self._lock = threading.Condition()
        self._pending: BatchMetrics | None = None
        self._heartbeat_pending = False
        self._takeover_pending = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"pushgateway-{job}", daemon=True)
        self._thread.start()
        for counter in (PUSHES, PUSH_FAILURES, PUSHES_SUPERSEDED):
            counter.labels(job=job)  # export 0 from the start, so rate() and alerts see the series

    def submit(self, metrics: BatchMetrics) -> None:
        """Queue ``metrics`` for pushing; a not yet pushed older batch is replaced (newest wins), and
        still counted in the duration histogram."""
        durations = self._durations.labels(self.pod) if self.pod else self._durations
        durations.observe(metrics.duration_ms / 1000)
        with self._lock:
            if self._pending is not None:
                PUSHES_SUPERSEDED.labels(job=self.job).inc()
            self._pending = metrics
            self._lock.notify()

    def take_over(self) -> None:
        """Queue an empty push that replaces whatever the group holds (a previous pod's last batch)."""
        with self._lock:
            self._takeover_pending = True
            self._lock.notify()

    def heartbeat(self) -> None:
        """Queue the idle heartbeat: added to the group, the batch values stay."""
        with self._lock:
            self._heartbeat_pending = True
            self._lock.notify()

    def close(self, timeout: float | None = None) -> None:
        """Push what is pending, then stop the pushing thread (waits at most ``timeout`` seconds)."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(self.timeout + 1 if timeout is None else timeout)

    def batch_registry(self, metrics: BatchMetrics) -> CollectorRegistry:
        """What a batch's push holds: its gauges under :attr:`names` and the duration histogram."""
        registry = CollectorRegistry()
        for name, value in metrics.values(self.names).items():
            self._gauge(registry, name, (), {(): value})
        for name, (label_names, samples) in metrics.labelled(self.names).items():
            self._gauge(registry, name, label_names, samples)
        registry.register(_Collected(self._durations.collect()))
        return registry

    # --- pushing thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                while (
                    self._pending is None
                    and not self._heartbeat_pending
                    and not self._takeover_pending
                    and not self._closed
                ):
                    self._lock.wait()
                metrics, self._pending = self._pending, None
                heartbeat, self._heartbeat_pending = self._heartbeat_pending, False
                takeover, self._takeover_pending = self._takeover_pending, False
                closed = self._closed
            # A batch replaces the whole group, so it also does what a pending takeover would.
            if metrics is not None:
                self._push(self.batch_registry(metrics), replace=True, batch_id=metrics.batch_id)
            elif takeover:
                self._push(CollectorRegistry(), replace=True, batch_id=None)
            elif heartbeat:
                self._push(self._heartbeat_registry(), replace=False, batch_id=None)
            if closed and metrics is None:
                return

    def _heartbeat_registry(self) -> CollectorRegistry:
        registry = CollectorRegistry()
        self._gauge(registry, self.names.idle_heartbeat, (), {(): time.time()})
        return registry

    def _gauge(
        self,
        registry: CollectorRegistry,
        name: str,
        label_names: tuple[str, ...],
        samples: dict[tuple[str, ...], float],
    ) -> None:
        """One gauge with its samples, each also labelled with the pushing pod (when known)."""
        pod = (self.pod,) if self.pod else ()
        names = (*label_names, "pod") if pod else label_names
        gauge = Gauge(name, HELP[name], names, registry=registry)
        for labels, value in sorted(samples.items()):
            (gauge.labels(*labels, *pod) if names else gauge).set(value)

    def _push(self, registry: CollectorRegistry, replace: bool, batch_id: int | None) -> None:
        # PUT replaces the whole group (a batch; an empty takeover deletes the previous pod's values and
        # refreshes push_time_seconds); POST only adds the heartbeat and keeps the batch values.
        push = push_to_gateway if replace else pushadd_to_gateway
        started = time.monotonic()
        try:
            push(
                self.pushgateway_url,
                job=self.job,
                registry=registry,
                grouping_key=self.grouping_key,
                timeout=self.timeout,
            )
        except Exception as exc:  # noqa: BLE001 - any failure must leave the pushing thread alive
            PUSH_FAILURES.labels(job=self.job).inc()
            logger.warning(
                "push_failed",
                extra={
                    "job": self.job,
                    **self.grouping_key,
                    "pod": self.pod,
                    "pushgateway_url": self.pushgateway_url,
                    "batch_id": batch_id,
                    "error": repr(exc),
                    "elapsed_seconds": round(time.monotonic() - started, 3),
                },
            )
            return
        PUSHES.labels(job=self.job).inc()
        logger.debug("pushed", extra={"job": self.job, "batch_id": batch_id})


class _Collected:
    """Metrics already collected, registered into a push's registry."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self._metrics
