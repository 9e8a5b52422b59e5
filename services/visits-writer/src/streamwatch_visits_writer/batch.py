"""The ``foreachBatch`` function of both connectors: classify, split, append to both tables exactly once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pyarrow.compute as pc

from streamwatch_visits_writer import metrics
from streamwatch_visits_writer.arrow_classify import KAFKA_COLUMNS, classify_arrow, classify_in_spark
from streamwatch_visits_writer.delta_sink import DeltaBatchSink
from streamwatch_visits_writer.schema import DEAD_LETTER_TABLE, VISITS_TABLE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)


class VisitsBatchWriter:
    """Writes each micro-batch to the visits table and the dead-letter table.

    The Delta application id is bound once the query has started (:meth:`bind`): it contains the query id
    that Spark keeps in the checkpoint, so a restart from the checkpoint continues the same transaction
    sequence while a fresh checkpoint (batch ids from 0 again) does not collide with an old one.

    Usage::

        writer = VisitsBatchWriter(visits_path, dead_letter_path, ["event_time", "user_id", "page"])
        query = stream.writeStream.foreachBatch(writer).option("checkpointLocation", cp).start()
        writer.bind(str(query.id))
    """

    def __init__(
        self,
        visits_path: str,
        dead_letter_path: str,
        required_fields: Sequence[str],
        *,
        simulated_latency_seconds: float = 0.0,
        sleep: Callable[[float], object] = time.sleep,
        connector: Literal["python", "jvm"] = "python",
    ) -> None:
        self.visits_path = visits_path
        self.dead_letter_path = dead_letter_path
        self.required_fields = list(required_fields)
        self.simulated_latency_seconds = simulated_latency_seconds
        self._sleep = sleep
        self.connector = connector
        self.app_id = ""
        self._bound = threading.Event()
        self._visits: DeltaBatchSink | None = None
        self._dead: DeltaBatchSink | None = None

    def bind(self, query_id: str, prefix: str = "streamwatch-visits-writer") -> None:
        """Set the Delta application id from the streaming query's id (stable across restarts)."""
        app_id = self.app_id = f"{prefix}-{query_id}"
        self._visits = DeltaBatchSink(self.visits_path, "visits", app_id)
        self._dead = DeltaBatchSink(self.dead_letter_path, "visits_dead_letters", app_id)
        self._bound.set()
        logger.info("delta_app_id_bound", extra={"app_id": app_id})

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        try:
            self._write(batch_df, batch_id)
        except Exception:
            metrics.BATCH_FAILURES.inc()
            logger.exception("batch_failed", extra={"batch_id": batch_id})
            raise

    def _write(self, batch_df: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        # The first batch may start before start() has returned the query id to the main thread.
        if not self._bound.wait(60):
            raise RuntimeError("the Delta application id was never bound to the query id")
        assert self._visits is not None and self._dead is not None
        if self.simulated_latency_seconds > 0:
            self._sleep(self.simulated_latency_seconds)
        if self.connector == "jvm":
            # The same rows, classified by the Python workers inside Spark and written by delta-spark.
            self._write_jvm(classify_in_spark(batch_df, batch_id, self.required_fields), batch_id, started)
            return
        read_started = time.monotonic()
        # Only the raw columns cross into Python; parsing in Arrow is ~10x faster than Spark's from_json
        # followed by toArrow() of the parsed structs.
        collected = batch_df.select(*KAFKA_COLUMNS).toArrow()
        read_at = time.monotonic()
        visits, dead = classify_arrow(collected, batch_id, self.required_fields)
        collected_at = time.monotonic()
        visits_written = visits.num_rows > 0 and self._visits.append(visits, batch_id)
        dead_written = dead.num_rows > 0 and self._dead.append(dead, batch_id)
        reasons: dict[str, int] = {}
        if dead_written:
            counts = pc.value_counts(dead["reason"]).to_pylist()
            reasons = {str(c["values"]): int(c["counts"]) for c in counts}
        _record_batch(
            batch_id,
            started,
            _Outcome(visits.num_rows, dead.num_rows, bool(visits_written), bool(dead_written), reasons),
            read_parse_seconds=round(collected_at - read_started, 3),
            parse_seconds=round(collected_at - read_at, 3),
            delta_write_seconds=round(time.monotonic() - collected_at, 3),
        )

    def _write_jvm(self, classified: DataFrame, batch_id: int, started: float) -> None:
        # delta-spark's idempotent writes: an append whose (txnAppId, txnVersion) is already committed is
        # skipped by Delta itself. The same transaction versions are read first (delta-rs reads the log
        # delta-spark wrote), so a replayed batch is neither parsed again nor counted twice in the metrics.
        assert self._visits is not None and self._dead is not None
        todo = [
            sink
            for sink in (self._visits, self._dead)
            if (committed := sink.committed_version()) is None or committed < batch_id
        ]
        classified = classified.persist()
        try:
            counts: dict[str | None, int] = {
                row["reason"]: int(row["count"]) for row in classified.groupBy("reason").count().collect()
            }
            visits = counts.pop(None, 0)
            dead = sum(counts.values())
            good = classified.where("reason IS NULL").select(*VISITS_TABLE.names)
            bad = classified.where("reason IS NOT NULL").select(*DEAD_LETTER_TABLE.names)
            write_started = time.monotonic()
            # As on the Python path, a table gets no commit for a batch without rows for it.
            for sink, frame, rows in ((self._visits, good, visits), (self._dead, bad, dead)):
                if rows and sink in todo:
                    writer = frame.write.format("delta").mode("append")
                    writer.option("txnAppId", self.app_id).option("txnVersion", batch_id).save(sink.path)
                elif rows:
                    logger.info("batch_already_committed", extra={"table": sink.name, "batch_id": batch_id})
        finally:
            classified.unpersist()
        visits_written = bool(visits) and self._visits in todo
        dead_written = bool(dead) and self._dead in todo
        reasons = {str(reason): count for reason, count in counts.items()} if dead_written else {}
        _record_batch(
            batch_id,
            started,
            _Outcome(visits, dead, visits_written, dead_written, reasons),
            delta_write_seconds=round(time.monotonic() - write_started, 3),
        )


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
