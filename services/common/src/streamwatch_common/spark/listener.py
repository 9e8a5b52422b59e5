"""Micro-batch SLA listener: pushes what every batch reports to a Prometheus Pushgateway.

The Pushgateway keeps the last value of a batch job that Prometheus cannot scrape in time; the alert
rules then compare ``visits_sync_duration`` with the SLA and ``push_time_seconds`` with the clock.

Pushed per micro-batch (gauges, one group per ``job`` + ``instance``, replaced on every push), under the
names of a :class:`BatchMetricNames`, and beside them a histogram of every batch's duration since the
query started in this pod (``visits_sync_batch_seconds`` / ``streaming_batch_seconds``, in seconds, the
job's SLA a bucket bound): a batch whose push a newer one superseded, or that came and went between two
scrapes, is still counted there. The group is the job's, not the pod's: ``instance`` is the same for
every pod of the job (the chart sets ``<namespace>/<deployment>``), so a new pod's pushes replace what the
previous pod pushed, and nothing of a pod that is gone (rolled out, or killed without a chance to clean
up) stays behind for the alerts to judge. When a query starts, the pusher takes the group over with an
empty push: the previous pod's last batch leaves at once, while the new pod is alive (the push time is
fresh), even before its first batch. The pod that pushed is a label of every gauge, ``pod``, for humans;
it is not part of the grouping key. The visits writer keeps the seed's names (:data:`VISITS_SYNC`,
``visits_sync_duration`` in milliseconds, what the SLA alert reads); every other job pushes the
job-neutral :data:`STREAMING_BATCH` names (``streaming_batch_duration_seconds`` ...), told apart by the
``job`` label, so a second job never shows up as the visits synchronizer. What a batch reports, and
how a part of a progress that cannot be read is treated, is :mod:`streamwatch_common.spark.batch_metrics`;
such a part is logged here (``progress_unreadable``) and counted in
``streamwatch_progress_unreadable_total{job, part}``, and everything else of the batch is still pushed.

While the query is idle (no new data) only the idle heartbeat (Unix time) is added to the group, which
refreshes ``push_time_seconds`` so an idle job is not mistaken for a stalled one. Spark (4.2,
``ProgressReporter.updateIdleness``) posts ``onQueryIdle`` for an idle trigger once
``spark.sql.streaming.noDataProgressEventInterval`` (10 s by default) has passed since the last batch or
the last idle event, and never for the very first idle trigger of a run: that interval is the
heartbeat's period, and the first heartbeat comes one interval after the query goes idle.

Counted on the process's own ``/metrics`` (label ``job``): ``streamwatch_pushes_total`` (successful
pushes), ``streamwatch_push_failures_total`` (failed pushes), ``streamwatch_pushes_superseded_total``
(a newer batch arrived before the previous one could be pushed; only the newest is pushed),
``streamwatch_progress_unreadable_total`` (label ``part`` too; see above).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    push_to_gateway,
    pushadd_to_gateway,
)
from prometheus_client.metrics_core import Metric
from pyspark.sql.streaming.listener import StreamingQueryListener

from streamwatch_common.settings import pod_name
from streamwatch_common.spark.batch_metrics import (
    DURATION_BUCKETS_SECONDS,
    HELP,
    PROGRESS_PARTS,
    STREAMING_BATCH,
    BatchMetricNames,
    BatchMetrics,
    duration_buckets,
    source_metrics,
)

if TYPE_CHECKING:
    from streamwatch_common.spark.job_settings import SparkJobSettings

logger = logging.getLogger(__name__)

PUSHES = Counter("streamwatch_pushes_total", "Successful pushes to the Pushgateway.", ["job"])
PUSH_FAILURES = Counter("streamwatch_push_failures_total", "Failed pushes to the Pushgateway.", ["job"])
PUSHES_SUPERSEDED = Counter(
    "streamwatch_pushes_superseded_total",
    "Batch metrics replaced by a newer batch before they could be pushed.",
    ["job"],
)
PROGRESS_UNREADABLE = Counter(
    "streamwatch_progress_unreadable_total",
    "Parts of a micro-batch progress that could not be read and were left out of the push, by part.",
    ["job", "part"],
)


class BatchMetricsPusher(StreamingQueryListener):
    """A ``StreamingQueryListener`` that pushes each micro-batch's metrics to a Pushgateway.

    Pushing happens on a daemon thread of its own: the listener callback only hands over the newest
    metrics, so a slow or unreachable Pushgateway costs the job nothing, and each push gives up after
    ``timeout`` seconds. A failed push is logged and counted, never raised.

    Usage (the visits writer pushes :data:`VISITS_SYNC` names, the passthrough the default ones)::

        pusher = BatchMetricsPusher("http://pushgateway:9091", job="passthrough",
                                    instance="streamwatch/sw-streamwatch-passthrough", pod=pod_name,
                                    timeout=2.0, names=STREAMING_BATCH)  # observation="visits_quality"
        spark.streams.addListener(pusher)
        ...
        spark.streams.removeListener(pusher)
        pusher.close()  # pushes what is still pending (bounded by the timeout), stops the thread
    """

    def __init__(
        self,
        pushgateway_url: str,
        job: str,
        instance: str,
        timeout: float = 2.0,
        *,
        names: BatchMetricNames = STREAMING_BATCH,
        observation: str | None = None,
        pod: str | None = None,
        buckets: Sequence[float] = DURATION_BUCKETS_SECONDS,
    ) -> None:
        super().__init__()
        self.pushgateway_url = pushgateway_url
        self.job = job
        self.names = names
        # The DataFrame.observe name whose values are pushed as names.observed_null_values.
        self.observation = observation
        # Grouping key: stable across the job's pods. The pod is a plain label of every gauge.
        self.instance = instance
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
        for part in PROGRESS_PARTS:
            PROGRESS_UNREADABLE.labels(job=job, part=part)

    # --- listener callbacks (Spark's listener thread: never block here) --------------------------
    def onQueryStarted(self, event: Any) -> None:
        logger.info("listener_query_started", extra={"query_id": str(event.id), "job": self.job})
        with self._lock:
            self._takeover_pending = True
            self._lock.notify()

    def onQueryProgress(self, event: Any) -> None:
        try:
            metrics = BatchMetrics.from_progress(event.progress, self.observation)
        except Exception:
            # Spark would swallow it silently inside the listener bus; make it visible instead.
            PUSH_FAILURES.labels(job=self.job).inc()
            logger.exception("batch_metrics_unreadable", extra={"job": self.job})
            return
        for problem in metrics.unreadable:
            PROGRESS_UNREADABLE.labels(job=self.job, part=problem.part).inc()
            logger.warning(
                "progress_unreadable",
                extra={
                    "job": self.job,
                    "batch_id": metrics.batch_id,
                    "part": problem.part,
                    "detail": problem.detail,
                },
            )
        self._log_progress(metrics, event.progress)
        self.submit(metrics)

    def _log_progress(self, metrics: BatchMetrics, progress: Any) -> None:
        """One ``batch_progress`` line per batch: what is pushed of the sources and the observation, and
        the sources' own metrics beside it (Spark's Kafka source reports its offsets behind latest)."""
        behind = metrics.behind_latest
        sources = getattr(progress, "sources", None) or []
        reported = [source_metrics(source) for source in sources]
        logger.info(
            "batch_progress",
            extra={
                "job": self.job,
                "batch_id": metrics.batch_id,
                "input_rows": metrics.input_rows,
                "end_offsets": {f"{t}/{p}": o for (t, p), o in sorted(metrics.end_offsets.items())},
                "offsets_behind_latest": None
                if behind is None
                else {"min": behind.min, "avg": behind.avg, "max": behind.max},
                "source_metrics": reported,
                "observed": dict(metrics.observed),
            },
        )

    def onQueryIdle(self, event: Any) -> None:
        logger.debug("listener_query_idle", extra={"job": self.job})
        with self._lock:
            self._heartbeat_pending = True
            self._lock.notify()

    def onQueryTerminated(self, event: Any) -> None:
        logger.info(
            "listener_query_terminated",
            extra={"query_id": str(event.id), "job": self.job, "exception": event.exception},
        )

    # --- API ------------------------------------------------------------------------------------
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

    def close(self, timeout: float | None = None) -> None:
        """Push what is pending, then stop the pushing thread (waits at most ``timeout`` seconds)."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(self.timeout + 1 if timeout is None else timeout)

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
                self._push(self._batch_registry(metrics), replace=True, batch_id=metrics.batch_id)
            elif takeover:
                self._push(CollectorRegistry(), replace=True, batch_id=None)
            elif heartbeat:
                self._push(self._heartbeat_registry(), replace=False, batch_id=None)
            if closed and metrics is None:
                return

    def _batch_registry(self, metrics: BatchMetrics) -> CollectorRegistry:
        registry = CollectorRegistry()
        for name, value in metrics.values(self.names).items():
            self._gauge(registry, name, (), {(): value})
        for name, (label_names, samples) in metrics.labelled(self.names).items():
            self._gauge(registry, name, label_names, samples)
        registry.register(_Collected(self._durations.collect()))
        return registry

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
                grouping_key={"instance": self.instance},
                timeout=self.timeout,
            )
        except Exception as exc:  # noqa: BLE001 - any failure must leave the pushing thread alive
            PUSH_FAILURES.labels(job=self.job).inc()
            logger.warning(
                "push_failed",
                extra={
                    "job": self.job,
                    "instance": self.instance,
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


def attach_batch_metrics(
    spark: Any,
    settings: SparkJobSettings,
    job: str,
    *,
    names: BatchMetricNames = STREAMING_BATCH,
    observation: str | None = None,
    sla_seconds: float | None = None,
) -> BatchMetricsPusher | None:
    """Push every micro-batch's metrics under ``job`` and ``names`` (and the values of the observation
    ``observation``, if any; ``sla_seconds`` a bound of the duration histogram) when the job has a
    Pushgateway URL, else nothing."""
    pusher = batch_metrics_pusher(settings, job, names, observation=observation, sla_seconds=sla_seconds)
    if pusher is not None:
        spark.streams.addListener(pusher)
    return pusher


def batch_metrics_pusher(
    settings: SparkJobSettings,
    job: str,
    names: BatchMetricNames = STREAMING_BATCH,
    *,
    observation: str | None = None,
    sla_seconds: float | None = None,
) -> BatchMetricsPusher | None:
    """The pusher :func:`attach_batch_metrics` attaches: the job's one group (``settings.instance_name``,
    the same for every pod) and this pod's name (``HOSTNAME``) as the ``pod`` label; None without a
    Pushgateway URL."""
    if not settings.pushgateway_url:
        return None
    return BatchMetricsPusher(
        settings.pushgateway_url,
        job=job,
        instance=settings.instance_name,
        timeout=settings.push_timeout_seconds,
        names=names,
        observation=observation,
        pod=pod_name(),
        buckets=duration_buckets(sla_seconds),
    )


def detach_batch_metrics(spark: Any, pusher: BatchMetricsPusher | None) -> None:
    """Undo :func:`attach_batch_metrics`: stop listening and let the last push finish."""
    if pusher is not None:
        spark.streams.removeListener(pusher)
        pusher.close()
