"""Micro-batch SLA listener: pushes every batch's duration and rates to a Prometheus Pushgateway.

The Pushgateway keeps the last value of a batch job that Prometheus cannot scrape in time; the alert
rules then compare ``visits_sync_duration`` with the SLA and ``push_time_seconds`` with the clock.

Pushed per micro-batch (gauges, one group per ``job`` + ``instance``, replaced on every push), under the
names of a :class:`BatchMetricNames`. The visits writer keeps the seed's names (:data:`VISITS_SYNC`,
``visits_sync_duration`` in milliseconds, what the SLA alert reads); every other job pushes the
job-neutral :data:`STREAMING_BATCH` names (``streaming_batch_duration_seconds`` ...), told apart by the
``job`` label, so a second job never shows up as the visits synchronizer. Each set holds the batch
duration (Spark's ``batchDuration``), the rows read, the input and processing rates and the batch id.

While the query is idle (no new data) only the idle heartbeat (Unix time) is added to the group, which
refreshes ``push_time_seconds`` so an idle job is not mistaken for a stalled one.

Counted on the process's own ``/metrics`` (label ``job``): ``streamwatch_pushes_total`` (successful
pushes), ``streamwatch_push_failures_total`` (failed pushes), ``streamwatch_pushes_superseded_total``
(a newer batch arrived before the previous one could be pushed; only the newest is pushed).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway, pushadd_to_gateway
from pyspark.sql.streaming.listener import StreamingQueryListener

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

# Help text of every name a job may push (the names of VISITS_SYNC and STREAMING_BATCH below).
_HELP = {
    "visits_sync_duration": "Duration of the last micro-batch in milliseconds.",
    "visits_sync_input_rows": "Rows read by the last micro-batch.",
    "visits_sync_input_rows_per_second": "Input rate of the last micro-batch (rows/s).",
    "visits_sync_processed_rows_per_second": "Processing rate of the last micro-batch (rows/s).",
    "visits_sync_batch_id": "Id of the last micro-batch.",
    "visits_sync_idle_heartbeat_seconds": "Unix time of the last idle trigger.",
    "streaming_batch_duration_seconds": "Duration of the last micro-batch in seconds.",
    "streaming_batch_input_rows": "Rows read by the last micro-batch.",
    "streaming_batch_input_rows_per_second": "Input rate of the last micro-batch (rows/s).",
    "streaming_batch_processed_rows_per_second": "Processing rate of the last micro-batch (rows/s).",
    "streaming_batch_id": "Id of the last micro-batch.",
    "streaming_batch_idle_heartbeat_seconds": "Unix time of the last idle trigger.",
}


@dataclass(frozen=True)
class BatchMetricNames:
    """The gauge names one job's batch metrics are pushed under, and the duration's unit."""

    duration: str
    duration_in_seconds: bool
    input_rows: str
    input_rows_per_second: str
    processed_rows_per_second: str
    batch_id: str
    idle_heartbeat: str


# The seed's names, kept for the visits writer alone: its SLA alert and dashboard read them.
VISITS_SYNC = BatchMetricNames(
    duration="visits_sync_duration",
    duration_in_seconds=False,
    input_rows="visits_sync_input_rows",
    input_rows_per_second="visits_sync_input_rows_per_second",
    processed_rows_per_second="visits_sync_processed_rows_per_second",
    batch_id="visits_sync_batch_id",
    idle_heartbeat="visits_sync_idle_heartbeat_seconds",
)
# Any other job: one set of names for all, the Pushgateway's ``job`` label says which job pushed.
STREAMING_BATCH = BatchMetricNames(
    duration="streaming_batch_duration_seconds",
    duration_in_seconds=True,
    input_rows="streaming_batch_input_rows",
    input_rows_per_second="streaming_batch_input_rows_per_second",
    processed_rows_per_second="streaming_batch_processed_rows_per_second",
    batch_id="streaming_batch_id",
    idle_heartbeat="streaming_batch_idle_heartbeat_seconds",
)


@dataclass(frozen=True)
class BatchMetrics:
    """What one micro-batch reports, as pushed."""

    batch_id: int
    duration_ms: float
    input_rows: int
    input_rows_per_second: float
    processed_rows_per_second: float

    @classmethod
    def from_progress(cls, progress: Any) -> BatchMetrics:
        """From a ``StreamingQueryProgress`` (or anything with the same attributes)."""
        return cls(
            batch_id=int(progress.batchId),
            duration_ms=float(progress.batchDuration),
            input_rows=int(progress.numInputRows),
            input_rows_per_second=float(progress.inputRowsPerSecond),
            processed_rows_per_second=float(progress.processedRowsPerSecond),
        )

    def values(self, names: BatchMetricNames) -> dict[str, float]:
        """Gauge name → value, under ``names``."""
        return {
            names.duration: self.duration_ms / 1000 if names.duration_in_seconds else self.duration_ms,
            names.input_rows: self.input_rows,
            names.input_rows_per_second: self.input_rows_per_second,
            names.processed_rows_per_second: self.processed_rows_per_second,
            names.batch_id: self.batch_id,
        }


class BatchMetricsPusher(StreamingQueryListener):
    """A ``StreamingQueryListener`` that pushes each micro-batch's metrics to a Pushgateway.

    Pushing happens on a daemon thread of its own: the listener callback only hands over the newest
    metrics, so a slow or unreachable Pushgateway costs the job nothing, and each push gives up after
    ``timeout`` seconds. A failed push is logged and counted, never raised.

    Usage (the visits writer pushes :data:`VISITS_SYNC` names, the passthrough the default ones)::

        pusher = BatchMetricsPusher("http://pushgateway:9091", job="passthrough", instance=pod_name,
                                    timeout=2.0, names=STREAMING_BATCH)
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
        names: BatchMetricNames = STREAMING_BATCH,
    ) -> None:
        super().__init__()
        self.pushgateway_url = pushgateway_url
        self.job = job
        self.names = names
        self.instance = instance
        self.timeout = timeout
        self._lock = threading.Condition()
        self._pending: BatchMetrics | None = None
        self._heartbeat_pending = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"pushgateway-{job}", daemon=True)
        self._thread.start()
        for counter in (PUSHES, PUSH_FAILURES, PUSHES_SUPERSEDED):
            counter.labels(job=job)  # export 0 from the start, so rate() and alerts see the series

    # --- listener callbacks (Spark's listener thread: never block here) --------------------------
    def onQueryStarted(self, event: Any) -> None:
        logger.info("listener_query_started", extra={"query_id": str(event.id), "job": self.job})

    def onQueryProgress(self, event: Any) -> None:
        try:
            self.submit(BatchMetrics.from_progress(event.progress))
        except Exception:
            # Spark would swallow it silently inside the listener bus; make it visible instead.
            PUSH_FAILURES.labels(job=self.job).inc()
            logger.exception("batch_metrics_unreadable", extra={"job": self.job})

    def onQueryIdle(self, event: Any) -> None:
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
        """Queue ``metrics`` for pushing; a not yet pushed older batch is replaced (newest wins)."""
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
                while self._pending is None and not self._heartbeat_pending and not self._closed:
                    self._lock.wait()
                metrics, self._pending = self._pending, None
                heartbeat, self._heartbeat_pending = self._heartbeat_pending, False
                closed = self._closed
            if metrics is not None:
                self._push(self._batch_registry(metrics), replace=True, batch_id=metrics.batch_id)
            elif heartbeat:
                self._push(self._heartbeat_registry(), replace=False, batch_id=None)
            if closed and metrics is None:
                return

    def _batch_registry(self, metrics: BatchMetrics) -> CollectorRegistry:
        registry = CollectorRegistry()
        for name, value in metrics.values(self.names).items():
            Gauge(name, _HELP[name], registry=registry).set(value)
        return registry

    def _heartbeat_registry(self) -> CollectorRegistry:
        registry = CollectorRegistry()
        heartbeat = self.names.idle_heartbeat
        Gauge(heartbeat, _HELP[heartbeat], registry=registry).set(time.time())
        return registry

    def _push(self, registry: CollectorRegistry, replace: bool, batch_id: int | None) -> None:
        # PUT replaces the whole group (a batch); POST only adds the heartbeat and keeps the batch values.
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
                    "pushgateway_url": self.pushgateway_url,
                    "batch_id": batch_id,
                    "error": repr(exc),
                    "elapsed_seconds": round(time.monotonic() - started, 3),
                },
            )
            return
        PUSHES.labels(job=self.job).inc()
        logger.debug("pushed", extra={"job": self.job, "batch_id": batch_id})


def attach_batch_metrics(
    spark: Any, settings: SparkJobSettings, job: str, names: BatchMetricNames = STREAMING_BATCH
) -> BatchMetricsPusher | None:
    """Push every micro-batch's metrics under ``job`` and ``names`` when the job has a Pushgateway URL,
    else nothing."""
    if not settings.pushgateway_url:
        return None
    pusher = BatchMetricsPusher(
        settings.pushgateway_url,
        job=job,
        instance=settings.instance_name,
        timeout=settings.push_timeout_seconds,
        names=names,
    )
    spark.streams.addListener(pusher)
    return pusher


def detach_batch_metrics(spark: Any, pusher: BatchMetricsPusher | None) -> None:
    """Undo :func:`attach_batch_metrics`: stop listening and let the last push finish."""
    if pusher is not None:
        spark.streams.removeListener(pusher)
        pusher.close()
