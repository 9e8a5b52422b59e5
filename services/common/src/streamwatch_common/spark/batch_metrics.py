"""What one micro-batch reports, read from Spark's ``StreamingQueryProgress``, and the gauge names each
job pushes it under (:mod:`streamwatch_common.spark.listener` pushes it).

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
observation that is missing or not numeric) is returned as an :class:`Unreadable` beside everything else
of the batch. Nothing here imports pyspark: a progress is read by its attributes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The values of PROGRESS_UNREADABLE's part label.
PART_SOURCES = "sources"
PART_END_OFFSET = "end_offset"
PART_LATEST_OFFSET = "latest_offset"
PART_OBSERVED = "observed_metrics"
PROGRESS_PARTS = (PART_SOURCES, PART_END_OFFSET, PART_LATEST_OFFSET, PART_OBSERVED)

# Help text of every name a job may push (the names of VISITS_SYNC and STREAMING_BATCH below).
HELP = {
    "visits_sync_duration": "Duration of the last micro-batch in milliseconds.",
    "visits_sync_batch_seconds": "Durations of every micro-batch since the job started, in seconds.",
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
    "streaming_batch_seconds": "Durations of every micro-batch since the job started, in seconds.",
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
    """The names one job's batch metrics are pushed under, and the duration's unit."""

    duration: str
    duration_in_seconds: bool
    # A histogram of every batch's duration: the gauge holds only the last batch, and a slow batch
    # between two scrapes would go unseen.
    duration_histogram: str
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
    duration_histogram="visits_sync_batch_seconds",
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
    duration_histogram="streaming_batch_seconds",
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

# Bucket bounds of the duration histogram: from a quick batch to one a slow sink stretches to minutes.
DURATION_BUCKETS_SECONDS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


def duration_buckets(sla_seconds: float | None) -> tuple[float, ...]:
    """The histogram's bucket bounds, the job's SLA among them: the share of batches over the SLA is then
    read from one bucket exactly, not interpolated."""
    bounds = set(DURATION_BUCKETS_SECONDS)
    if sla_seconds is not None:
        bounds.add(sla_seconds)
    return tuple(sorted(bounds))


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


def source_metrics(source: Any) -> dict[str, str]:
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
