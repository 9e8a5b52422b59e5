"""The visits writer as a :class:`StreamingJob`: create the tables, then Kafka ``visits`` → Delta tables.

The lifecycle (ops server, session, listener, query, graceful stop, exit codes) is the shared runner's
(:mod:`streamwatch_common.spark.runner`). Exit codes: 0 after a requested stop (SIGTERM/SIGINT), 1 when
the query fails or a table has an incompatible schema (2 stays reserved for bad settings).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_common.spark.batch_metric_names import VISITS_SYNC
from streamwatch_common.spark.runner import EXIT_FAILED, EXIT_OK, StreamingJob, run_streaming_job
from streamwatch_visits_writer import metrics
from streamwatch_visits_writer.batch import VisitsBatchWriter
from streamwatch_visits_writer.batch_paths import batch_path
from streamwatch_visits_writer.settings import VisitsWriterSettings
from streamwatch_visits_writer.tables import IncompatibleTableError, create_tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming.query import StreamingQuery

logger = logging.getLogger(__name__)


def spark_conf(settings: VisitsWriterSettings) -> dict[str, str]:
    """This job's Spark properties: the shared caps and jars, delta-spark's extensions on the jvm path, the
    user's."""
    path = batch_path(settings.kafka_connector, settings.required_fields)
    return settings.spark_session_conf(**path.spark_conf)


def create_tables_command(settings: VisitsWriterSettings) -> int:
    """``create-tables``: both tables, idempotently; 1 with one stderr line on an incompatible table."""
    try:
        create_tables(settings.visits_table_path, settings.dead_letter_table_path)
    except IncompatibleTableError as exc:
        metrics.TABLE_ERRORS.inc()
        logger.error("table_incompatible", extra={"error": str(exc)})
        print(f"visits-writer create-tables: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    return EXIT_OK


class VisitsToDelta(StreamingJob):
    """Every micro-batch: parse, classify, append visits and dead letters to Delta exactly once."""

    app_name = "visits-writer"
    query_name = "visits_to_delta"
    query_failures = metrics.QUERY_FAILURES

    def __init__(self, settings: VisitsWriterSettings, shutdown: GracefulShutdown) -> None:
        super().__init__(settings)
        self.writer = VisitsBatchWriter(
            settings.visits_table_path,
            settings.dead_letter_table_path,
            settings.required_fields,
            simulated_latency_seconds=settings.simulated_latency_seconds,
            # A stop request cuts the simulated latency short instead of waiting it out.
            sleep=shutdown.wait,
            connector=self.connector,
        )
        self.tables = settings.visits_table_path, settings.dead_letter_table_path
        self.required_fields = list(settings.required_fields)
        self.observe_null_counts = settings.observe_null_counts
        self.sla_seconds = settings.sla_seconds

    def prepare(self, shutdown: GracefulShutdown) -> bool:
        try:
            create_tables(*self.tables)
        except IncompatibleTableError as exc:
            # The runner then logs job_failed and exits 1: appending to such a table would fail anyway.
            metrics.TABLE_ERRORS.inc()
            logger.error("table_incompatible", extra={"error": str(exc)})
            raise
        return True

    def spark_conf(self) -> dict[str, str]:
        return dict(self.writer.path.spark_conf)

    def listener_options(self) -> dict[str, Any]:
        from streamwatch_visits_writer.null_counts import QUALITY_OBSERVATION

        # The seed's SLA metric names (visits_sync_*) belong to this job alone.
        observation = QUALITY_OBSERVATION if self.observe_null_counts else None
        return {"names": VISITS_SYNC, "observation": observation, "sla_seconds": self.sla_seconds}

    def select(self, stream: DataFrame) -> DataFrame:
        if not self.observe_null_counts:
            return stream
        from streamwatch_visits_writer.null_counts import QUALITY_OBSERVATION, null_counts

        # On the streaming plan, so Spark reports the counts of each batch in its progress
        # (observedMetrics), whichever connector reads and writes.
        return stream.observe(QUALITY_OBSERVATION, *null_counts(self.required_fields))

    def write_batch(self, batch_df: DataFrame, batch_id: int) -> None:
        self.writer(batch_df, batch_id)

    def query_started(self, query: StreamingQuery) -> None:
        # A replay after a restart skips what the table already holds under this query id.
        self.writer.bind(str(query.id))


def run(settings: VisitsWriterSettings, shutdown: GracefulShutdown) -> int:
    """Create the tables, then run the query until SIGTERM (exit 0) or until it fails (exit 1)."""
    return run_streaming_job(VisitsToDelta(settings, shutdown), shutdown)
