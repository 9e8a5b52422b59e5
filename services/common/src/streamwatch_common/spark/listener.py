"""Micro-batch SLA listener: pushes every batch's duration, rates and source positions to a Pushgateway.

The Pushgateway keeps the last value of a batch job that Prometheus cannot scrape in time; the alert
rules then compare ``visits_sync_duration`` with the SLA and ``push_time_seconds`` with the clock.

Pushed per micro-batch (gauges, one group per ``job`` + ``instance``, replaced on every push), under the
names of a :class:`BatchMetricNames`. The visits writer keeps the seed's names (:data:`VISITS_SYNC`,
``visits_sync_duration`` in milliseconds, what the SLA alert reads); every other job pushes the
job-neutral :data:`STREAMING_BATCH` names (``streaming_batch_duration_seconds`` ...), told apart by the
``job`` label, so a second job never shows up as the visits synchronizer. Each set holds:

- the batch duration (Spark's ``batchDuration``), the rows read, the input and processing rates and the
  batch id;
- from the progress' sources: the end offset of the batch per source partition (labels ``topic`` and
  ``partition``) and how far the batch ended behind the newest offsets the source saw while planning it
  (``latestOffset``): the minimum, mean and maximum of ``latest - end`` over the source partitions. Spark's
  JVM Kafka source reports the same three values as ``minOffsetsBehindLatest`` ... in its ``metrics``;
  they are computed here from the offsets instead so that both connectors get them by one definition
  (the project's Python source reports the offsets but no such metrics). With several sources, the
  statistics run over the partitions of all of them;
- with a job's ``observation`` (``DataFrame.observe``), each of its values as
  ``<prefix>_observed_null_values{field=...}``.

A part of a progress that cannot be read (no sources, offsets that are not ``{"topic": {"0": 42}}``, an
observation that is missing or not numeric) is logged (``progress_unreadable``) and counted in
``streamwatch_progress_unreadable_total{job, part}``; everything else of the batch is still pushed.

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

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
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
PROGRESS_UNREADABLE = Counter(
    "streamwatch_progress_unreadable_total",
    "Parts of a micro-batch progress that could not be read and were left out of the push, by part.",
    ["job", "part"],
)
# The values of PROGRESS_UNREADABLE's part label.
PART_SOURCES = "sources"
PART_END_OFFSET = "end_offset"
PART_LATEST_OFFSET = "latest_offset"
PART_OBSERVED = "observed_metrics"
PROGRESS_PARTS = (PART_SOURCES, PART_END_OFFSET, PART_LATEST_OFFSET, PART_OBSERVED)

# Help text of every name a job may push (the names of VISITS_SYNC and STREAMING_BATCH below).
_HELP = {
    "visits_sync_duration": "Duration of the last micro-batch in milliseconds.",
    "visits_sync_input_rows": "Rows read by the last micro-batch.",
    "visits_sync_input_rows_per_second": "Input rate of the last micro-batch (rows/s).",
    "visits_sync_processed_rows_per_second": "Processing rate of the last micro-batch (rows/s).",
    "visits_sync_batch_id": "Id of the last micro-batch.",
    "visits_sync_idle_heartbeat_seconds": "Unix time of the last idle trigger.",
    "visits_sync_source_end_offset": "End offset (exclusive) of the last micro-batch per source partition.",
    "visits_sync_offsets_behind_latest_min": "Fewest offsets a source partition was behind its newest "
    "offset at the end of the last micro-batch.",
    "visits_sync_offsets_behind_latest_avg": "Mean offsets the source partitions were behind their newest "
    "offsets at the end of the last micro-batch.",
    "visits_sync_offsets_behind_latest_max": "Most offsets a source partition was behind its newest "
    "offset at the end of the last micro-batch.",
    "visits_sync_observed_null_values": "Records of the last micro-batch whose required field is null or "
    "blank (DataFrame.observe, opt-in).",
    "streaming_batch_duration_seconds": "Duration of the last micro-batch in seconds.",
    "streaming_batch_input_rows": "Rows read by the last micro-batch.",
    "streaming_batch_input_rows_per_second": "Input rate of the last micro-batch (rows/s).",
    "streaming_batch_processed_rows_per_second": "Processing rate of the last micro-batch (rows/s).",
    "streaming_batch_id": "Id of the last micro-batch.",
    "streaming_batch_idle_heartbeat_seconds": "Unix time of the last idle trigger.",
    "streaming_batch_source_end_offset": "End offset (exclusive) of the last micro-batch per source "
    "partition.",
    "streaming_batch_offsets_behind_latest_min": "Fewest offsets a source partition was behind its newest "
    "offset at the end of the last micro-batch.",
    "streaming_batch_offsets_behind_latest_avg": "Mean offsets the source partitions were behind their "
    "newest offsets at the end of the last micro-batch.",
    "streaming_batch_offsets_behind_latest_max": "Most offsets a source partition was behind its newest "
    "offset at the end of the last micro-batch.",
    "streaming_batch_observed_null_values": "Records of the last micro-batch whose field is null or blank "
    "(DataFrame.observe, opt-in).",
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
    source_end_offset: str
    offsets_behind_latest_min: str
    offsets_behind_latest_avg: str
    offsets_behind_latest_max: str
    observed_null_values: str


# The seed's names, kept for the visits writer alone: its SLA alert and dashboard read them.
VISITS_SYNC = BatchMetricNames(
    duration="visits_sync_duration",
    duration_in_seconds=False,
    input_rows="visits_sync_input_rows",
    input_rows_per_second="visits_sync_input_rows_per_second",
    processed_rows_per_second="visits_sync_processed_rows_per_second",
    batch_id="visits_sync_batch_id",
    idle_heartbeat="visits_sync_idle_heartbeat_seconds",
    source_end_offset="visits_sync_source_end_offset",
    offsets_behind_latest_min="visits_sync_offsets_behind_latest_min",
    offsets_behind_latest_avg="visits_sync_offsets_behind_latest_avg",
    offsets_behind_latest_max="visits_sync_offsets_behind_latest_max",
    observed_null_values="visits_sync_observed_null_values",
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
    source_end_offset="streaming_batch_source_end_offset",
    offsets_behind_latest_min="streaming_batch_offsets_behind_latest_min",
    offsets_behind_latest_avg="streaming_batch_offsets_behind_latest_avg",
    offsets_behind_latest_max="streaming_batch_offsets_behind_latest_max",
    observed_null_values="streaming_batch_observed_null_values",
)

# topic -> partition (as a string, like Spark's JSON) -> offset
Offsets = dict[str, dict[str, int]]
# A gauge with labels: its label names, and label values -> value
Labelled = tuple[tuple[str, ...], dict[tuple[str, ...], float]]


def parse_offsets(text: object) -> Offsets:
    """A source offset of a progress, ``{"topic": {"0": 42}}`` as JSON text; ValueError for anything else
    (null, another shape, a partition that is not a number, an offset that is not an integer)."""
    if not isinstance(text, str):
        raise ValueError(f"no offsets JSON: {text!r}")
    parsed = json.loads(text)  # json.JSONDecodeError is a ValueError
    if not isinstance(parsed, dict) or not parsed:
        raise ValueError(f'not {{"topic": {{"partition": offset}}}}: {text[:200]!r}')
    offsets: Offsets = {}
    for topic, parts in parsed.items():
        if not isinstance(parts, dict):
            raise ValueError(f"topic {topic!r}: not a partition → offset object: {text[:200]!r}")
        for partition, offset in parts.items():
            # bool is an int to Python, never an offset.
            if not partition.isdigit() or not isinstance(offset, int) or isinstance(offset, bool):
                raise ValueError(f"topic {topic!r}: partition {partition!r} offset {offset!r}")
            offsets.setdefault(str(topic), {})[partition] = offset
    return offsets


def offsets_behind(end: Offsets, latest: Offsets) -> list[int]:
    """``latest - end`` for every partition of ``latest`` that ``end`` holds too.

    This is the definition of Spark's Kafka source metrics (``KafkaMicroBatchStream.metrics``: for each
    partition of the latest offsets, the latest minus the consumed offset), applied to any source that
    reports both offsets. A partition known only to ``latest`` has no batch position yet and is left out.
    """
    return [
        newest - end[topic][partition]
        for topic, parts in sorted(latest.items())
        for partition, newest in sorted(parts.items())
        if partition in end.get(topic, {})
    ]


@dataclass(frozen=True)
class OffsetsBehind:
    """How far a batch ended behind the newest offsets, over the source partitions."""

    min: int
    avg: float
    max: int

    @classmethod
    def of(cls, behind: list[int]) -> OffsetsBehind | None:
        return cls(min(behind), sum(behind) / len(behind), max(behind)) if behind else None


@dataclass(frozen=True)
class Unreadable:
    """A part of a progress that could not be read: which part (a PROGRESS_PARTS value) and why."""

    part: str
    detail: str


@dataclass(frozen=True)
class BatchMetrics:
    """What one micro-batch reports, as pushed."""

    batch_id: int
    duration_ms: float
    input_rows: int
    input_rows_per_second: float
    processed_rows_per_second: float
    # (topic, partition) -> end offset of the batch
    end_offsets: Mapping[tuple[str, str], int] = field(default_factory=dict)
    behind_latest: OffsetsBehind | None = None
    # observed field -> value (DataFrame.observe)
    observed: Mapping[str, int] = field(default_factory=dict)
    unreadable: tuple[Unreadable, ...] = ()

    @classmethod
    def from_progress(cls, progress: Any, observation: str | None = None) -> BatchMetrics:
        """From a ``StreamingQueryProgress`` (or anything with the same attributes).

        The batch's own numbers must be there (else this raises); sources and the observation
        ``observation`` are read as far as they can be, the rest is listed in :attr:`unreadable`."""
        unreadable: list[Unreadable] = []
        end_offsets, behind = _source_offsets(progress, unreadable)
        observed = _observed(progress, observation, unreadable) if observation else {}
        return cls(
            batch_id=int(progress.batchId),
            duration_ms=float(progress.batchDuration),
            input_rows=int(progress.numInputRows),
            input_rows_per_second=float(progress.inputRowsPerSecond),
            processed_rows_per_second=float(progress.processedRowsPerSecond),
            end_offsets=end_offsets,
            behind_latest=OffsetsBehind.of(behind),
            observed=observed,
            unreadable=tuple(unreadable),
        )

    def values(self, names: BatchMetricNames) -> dict[str, float]:
        """Gauge name → value of the gauges without labels, under ``names``."""
        values: dict[str, float] = {
            names.duration: self.duration_ms / 1000 if names.duration_in_seconds else self.duration_ms,
            names.input_rows: self.input_rows,
            names.input_rows_per_second: self.input_rows_per_second,
            names.processed_rows_per_second: self.processed_rows_per_second,
            names.batch_id: self.batch_id,
        }
        if self.behind_latest is not None:
            values[names.offsets_behind_latest_min] = self.behind_latest.min
            values[names.offsets_behind_latest_avg] = self.behind_latest.avg
            values[names.offsets_behind_latest_max] = self.behind_latest.max
        return values

    def labelled(self, names: BatchMetricNames) -> dict[str, Labelled]:
        """Gauge name → (label names, label values → value) of the gauges with labels, under ``names``."""
        gauges: dict[str, Labelled] = {}
        if self.end_offsets:
            offsets: dict[tuple[str, ...], float] = {k: float(o) for k, o in self.end_offsets.items()}
            gauges[names.source_end_offset] = (("topic", "partition"), offsets)
        if self.observed:
            gauges[names.observed_null_values] = (("field",), {(k,): v for k, v in self.observed.items()})
        return gauges


def _source_offsets(
    progress: Any, unreadable: list[Unreadable]
) -> tuple[dict[tuple[str, str], int], list[int]]:
    """End offset per (topic, partition) and the offsets behind latest, of every readable source."""
    sources = list(getattr(progress, "sources", None) or [])
    if not sources:
        unreadable.append(Unreadable(PART_SOURCES, "the progress lists no source"))
    end_offsets: dict[tuple[str, str], int] = {}
    behind: list[int] = []
    for index, source in enumerate(sources):
        where = f"source {index} ({getattr(source, 'description', '?')})"
        try:
            end = parse_offsets(source.endOffset)
        except ValueError as exc:
            unreadable.append(Unreadable(PART_END_OFFSET, f"{where}: {exc}"))
            continue
        for topic, parts in end.items():
            for partition, offset in parts.items():
                end_offsets[(topic, partition)] = offset
        try:
            latest = parse_offsets(source.latestOffset)
        except ValueError as exc:
            unreadable.append(Unreadable(PART_LATEST_OFFSET, f"{where}: {exc}"))
            continue
        behind.extend(offsets_behind(end, latest))
    return end_offsets, behind


def _source_metrics(source: Any) -> dict[str, str]:
    """A source's own metrics (string → string in Spark's API), or nothing if it has none."""
    metrics = getattr(source, "metrics", None)
    return {str(k): str(v) for k, v in metrics.items()} if isinstance(metrics, Mapping) else {}


def _observed(progress: Any, observation: str, unreadable: list[Unreadable]) -> dict[str, int]:
    row = (getattr(progress, "observedMetrics", None) or {}).get(observation)
    if row is None:
        unreadable.append(Unreadable(PART_OBSERVED, f"no observation named {observation!r}"))
        return {}
    try:
        return {str(name): int(value) for name, value in row.asDict().items()}
    except (AttributeError, TypeError, ValueError) as exc:
        unreadable.append(Unreadable(PART_OBSERVED, f"observation {observation!r}: {exc!r}"))
        return {}


class BatchMetricsPusher(StreamingQueryListener):
    """A ``StreamingQueryListener`` that pushes each micro-batch's metrics to a Pushgateway.

    Pushing happens on a daemon thread of its own: the listener callback only hands over the newest
    metrics, so a slow or unreachable Pushgateway costs the job nothing, and each push gives up after
    ``timeout`` seconds. A failed push is logged and counted, never raised.

    Usage (the visits writer pushes :data:`VISITS_SYNC` names, the passthrough the default ones)::

        pusher = BatchMetricsPusher("http://pushgateway:9091", job="passthrough", instance=pod_name,
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
    ) -> None:
        super().__init__()
        self.pushgateway_url = pushgateway_url
        self.job = job
        self.names = names
        # The DataFrame.observe name whose values are pushed as names.observed_null_values.
        self.observation = observation
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
        for part in PROGRESS_PARTS:
            PROGRESS_UNREADABLE.labels(job=job, part=part)

    # --- listener callbacks (Spark's listener thread: never block here) --------------------------
    def onQueryStarted(self, event: Any) -> None:
        logger.info("listener_query_started", extra={"query_id": str(event.id), "job": self.job})

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
        source_metrics = [_source_metrics(source) for source in sources]
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
                "source_metrics": source_metrics,
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
        for name, (label_names, samples) in metrics.labelled(self.names).items():
            gauge = Gauge(name, _HELP[name], label_names, registry=registry)
            for labels, value in sorted(samples.items()):
                gauge.labels(*labels).set(value)
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
    spark: Any,
    settings: SparkJobSettings,
    job: str,
    names: BatchMetricNames = STREAMING_BATCH,
    observation: str | None = None,
) -> BatchMetricsPusher | None:
    """Push every micro-batch's metrics under ``job`` and ``names`` (and the values of the observation
    ``observation``, if any) when the job has a Pushgateway URL, else nothing."""
    if not settings.pushgateway_url:
        return None
    pusher = BatchMetricsPusher(
        settings.pushgateway_url,
        job=job,
        instance=settings.instance_name,
        timeout=settings.push_timeout_seconds,
        names=names,
        observation=observation,
    )
    spark.streams.addListener(pusher)
    return pusher


def detach_batch_metrics(spark: Any, pusher: BatchMetricsPusher | None) -> None:
    """Undo :func:`attach_batch_metrics`: stop listening and let the last push finish."""
    if pusher is not None:
        spark.streams.removeListener(pusher)
        pusher.close()
