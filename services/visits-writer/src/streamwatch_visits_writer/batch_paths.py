"""How one micro-batch is classified and appended to both tables, on each connector.

The job's connector (:mod:`streamwatch_common.spark.connector`) picks the path once, at start:

- ``python``: :class:`ArrowPath`, the raw Kafka columns to the driver as Arrow (in local mode, the Arrow
  files the spilling source's read tasks wrote: :mod:`~streamwatch_visits_writer.spill_source`),
  :func:`classify_arrow`, then delta-rs appends (:class:`.delta_sink.DeltaBatchSink`);
- ``jvm``: :class:`SparkPath`, :func:`classify_in_spark` (``mapInArrow`` on Spark's Python workers), then
  delta-spark appends, with its session extensions in the job's Spark properties.

Both give every record the shared rule's verdict, skip a batch a table already holds, and record the same
metrics and ``batch_written`` line (:func:`_record_batch`).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import pyarrow.compute as pc

from streamwatch_visits_writer import metrics
from streamwatch_visits_writer.arrow_classify import KAFKA_COLUMNS, classify_arrow, classify_in_spark
from streamwatch_visits_writer.schema import DEAD_LETTER_TABLE, VISITS_TABLE
from streamwatch_visits_writer.spill_source import collect_spilled

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa
    from pyspark.sql import DataFrame

    from streamwatch_common.spark.connector import Connector
    from streamwatch_visits_writer.delta_sink import DeltaBatchSink

logger = logging.getLogger(__name__)

# delta-spark's SQL extension and catalog, for the opt-in JVM sink only. Delta rebuilds the table's
# snapshot with 50 partitions by default: on a 2-core pod that made each append of a small batch take tens
# of seconds (measured here); 2 matches the session's shuffle partitions.
_DELTA_SPARK_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.databricks.delta.snapshotPartitions": "2",
}


class BatchPath(ABC):
    """Classify one micro-batch and append its two halves to the visits and dead-letter tables."""

    #: Spark properties the path needs in the job's session.
    spark_conf: ClassVar[Mapping[str, str]] = {}

    def __init__(self, required_fields: Sequence[str]) -> None:
        self.required_fields = list(required_fields)

    @abstractmethod
    def write(
        self, batch_df: DataFrame, batch_id: int, visits: DeltaBatchSink, dead: DeltaBatchSink, started: float
    ) -> None:
        """Append batch ``batch_id`` to ``visits`` and ``dead`` at most once; record its metrics."""


class ArrowPath(BatchPath):
    """The ``python`` connector's: classified on the driver with pyarrow, appended with delta-rs.

    With ``spill_directory`` the batch comes from the spilling source (:mod:`.spill_source`): its read
    tasks' Arrow files, read by the driver; without, the raw columns through Spark (``toArrow()``).
    """

    def __init__(self, required_fields: Sequence[str], spill_directory: Path | None = None) -> None:
        super().__init__(required_fields)
        self.spill_directory = spill_directory

    def collect(self, batch_df: DataFrame) -> pa.Table:
        """The batch's Kafka rows (:data:`KAFKA_COLUMNS`) on the driver, as Arrow."""
        if self.spill_directory is not None:
            return collect_spilled(batch_df, self.spill_directory)
        # Only the raw columns cross into Python; parsing in Arrow is ~10x faster than Spark's from_json
        # followed by toArrow() of the parsed structs.
        return batch_df.select(*KAFKA_COLUMNS).toArrow()

    def write(
        self, batch_df: DataFrame, batch_id: int, visits: DeltaBatchSink, dead: DeltaBatchSink, started: float
    ) -> None:
        read_started = time.monotonic()
        collected = self.collect(batch_df)
        read_at = time.monotonic()
        good, bad = classify_arrow(collected, batch_id, self.required_fields)
        collected_at = time.monotonic()
        visits_written = good.num_rows > 0 and visits.append(good, batch_id)
        dead_written = bad.num_rows > 0 and dead.append(bad, batch_id)
        reasons: dict[str, int] = {}
        if dead_written:
            counts = pc.value_counts(bad["reason"]).to_pylist()
            reasons = {str(c["values"]): int(c["counts"]) for c in counts}
        _record_batch(
            batch_id,
            started,
            _Outcome(good.num_rows, bad.num_rows, bool(visits_written), bool(dead_written), reasons),
            read_parse_seconds=round(collected_at - read_started, 3),
            parse_seconds=round(collected_at - read_at, 3),
            delta_write_seconds=round(time.monotonic() - collected_at, 3),
        )


class SparkPath(BatchPath):
    """The ``jvm`` connector's: classified by Spark's Python workers, appended with delta-spark."""

    spark_conf = _DELTA_SPARK_CONF

    def write(
        self, batch_df: DataFrame, batch_id: int, visits: DeltaBatchSink, dead: DeltaBatchSink, started: float
    ) -> None:
        # The same rows, classified by the Python workers inside Spark and written by delta-spark.
        classified = classify_in_spark(batch_df, batch_id, self.required_fields)
        # delta-spark's idempotent writes: an append whose (txnAppId, txnVersion) is already committed is
        # skipped by Delta itself. The same transaction versions are read first (delta-rs reads the log
        # delta-spark wrote), so a replayed batch is neither parsed again nor counted twice in the metrics.
        todo = [
            sink
            for sink in (visits, dead)
            if (committed := sink.committed_version()) is None or committed < batch_id
        ]
        classified = classified.persist()
        try:
            counts: dict[str | None, int] = {
                row["reason"]: int(row["count"]) for row in classified.groupBy("reason").count().collect()
            }
            good_rows = counts.pop(None, 0)
            bad_rows = sum(counts.values())
            good = classified.where("reason IS NULL").select(*VISITS_TABLE.names)
            bad = classified.where("reason IS NOT NULL").select(*DEAD_LETTER_TABLE.names)
            write_started = time.monotonic()
            # As on the Python path, a table gets no commit for a batch without rows for it.
            for sink, frame, rows in ((visits, good, good_rows), (dead, bad, bad_rows)):
                if rows and sink in todo:
                    writer = frame.write.format("delta").mode("append")
                    writer.option("txnAppId", sink.app_id).option("txnVersion", batch_id).save(sink.path)
                elif rows:
                    logger.info("batch_already_committed", extra={"table": sink.name, "batch_id": batch_id})
        finally:
            classified.unpersist()
        visits_written = bool(good_rows) and visits in todo
        dead_written = bool(bad_rows) and dead in todo
        reasons = {str(reason): count for reason, count in counts.items()} if dead_written else {}
        _record_batch(
            batch_id,
            started,
            _Outcome(good_rows, bad_rows, visits_written, dead_written, reasons),
            delta_write_seconds=round(time.monotonic() - write_started, 3),
        )


def batch_path(
    connector: Connector, required_fields: Sequence[str], spill_directory: Path | None = None
) -> BatchPath:
    """The path of ``connector``, for records that must have ``required_fields``; on ``python``, reading
    the spilling source's files in ``spill_directory`` when given."""
    if connector.pick(python=True, jvm=False):
        return ArrowPath(required_fields, spill_directory)
    return SparkPath(required_fields)


@dataclass(frozen=True)
class _Outcome:
    """What one batch brought to each table, and whether this run wrote it (False: an earlier run did)."""

    visits: int
    dead_letters: int
    visits_written: bool
    dead_written: bool
    reasons: dict[str, int]

    @property
    def replayed(self) -> bool:
        visits_replayed = self.visits > 0 and not self.visits_written
        return visits_replayed or (self.dead_letters > 0 and not self.dead_written)


def _record_batch(batch_id: int, started: float, outcome: _Outcome, **timings: float) -> None:
    """The metrics and the ``batch_written`` line of a batch, the same for both connectors."""
    if outcome.visits and not outcome.visits_written:
        metrics.BATCHES_REPLAYED.labels(table="visits").inc()
    if outcome.dead_letters and not outcome.dead_written:
        metrics.BATCHES_REPLAYED.labels(table="visits_dead_letters").inc()
    for reason, count in outcome.reasons.items():
        metrics.DEAD_LETTERS.labels(reason=reason).inc(count)
    if outcome.visits_written:
        metrics.ROWS_WRITTEN.inc(outcome.visits)
    metrics.BATCHES.inc()
    elapsed = time.monotonic() - started
    metrics.BATCH_SECONDS.observe(elapsed)
    logger.info(
        "batch_written",
        extra={
            "batch_id": batch_id,
            "records": outcome.visits + outcome.dead_letters,
            "visits": outcome.visits if outcome.visits_written else 0,
            "dead_letters": outcome.dead_letters if outcome.dead_written else 0,
            "dead_letter_reasons": outcome.reasons,
            "replayed": outcome.replayed,
            "seconds": round(elapsed, 3),
            **timings,
        },
    )
