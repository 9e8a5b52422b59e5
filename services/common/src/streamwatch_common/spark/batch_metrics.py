"""What one micro-batch reports, read from Spark's ``StreamingQueryProgress``
(:mod:`streamwatch_common.spark.listener` pushes it, under the names of a
:class:`~streamwatch_common.spark.batch_metric_names.BatchMetricNames`).

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamwatch_common.spark.batch_metric_names import BatchMetricNames

# The values of PROGRESS_UNREADABLE's part label.
PART_SOURCES = "sources"
PART_END_OFFSET = "end_offset"
PART_LATEST_OFFSET = "latest_offset"
PART_OBSERVED = "observed_metrics"
PROGRESS_PARTS = (PART_SOURCES, PART_END_OFFSET, PART_LATEST_OFFSET, PART_OBSERVED)

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
        # "null" as JSON, "None" as pyspark's SourceProgress.fromJObject writes a null (str(None)).
        if source.latestOffset in (None, "null", "None"):
            # Not reported, which is not unreadable: Spark leaves it out of a batch it runs again from its
            # offset log (the first batch after a restart), so that batch has no offsets behind latest.
            continue
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
