"""The visits writer as a :class:`StreamingJob`: create the tables, then Kafka ``visits`` → Delta tables.

The lifecycle (ops server, session, listener, query, graceful stop, exit codes) is the shared runner's
(:mod:`streamwatch_common.spark.runner`). Exit codes: 0 after a requested stop (SIGTERM/SIGINT), 1 when
the query fails or a table has an incompatible schema (2 stays reserved for bad settings).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_common.spark.batch_metric_names import VISITS_SYNC
from streamwatch_common.spark.runner import EXIT_FAILED, EXIT_OK, StreamingJob, run_streaming_job
from streamwatch_visits_writer import metrics
from streamwatch_visits_writer.batch import VisitsBatchWriter
from streamwatch_visits_writer.batch_paths import batch_path
from streamwatch_visits_writer.settings import VisitsWriterSettings
from streamwatch_visits_writer.spill_source import SpillConnector
from streamwatch_visits_writer.tables import TableError, create_tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming.query import StreamingQuery

logger = logging.getLogger(__name__)


def spark_conf(settings: VisitsWriterSettings) -> dict[str, str]:
    """This job's Spark properties: the shared caps and jars, delta-spark's extensions on the jvm path, the
    user's."""
    path = batch_path(settings.kafka_connector, settings.required_fields)
    return settings.spark_session_conf(**path.spark_conf)


def spill_directory(settings: VisitsWriterSettings) -> Path | None:
    """Where the ``python`` connector's read tasks hand the driver their records
    (:mod:`~streamwatch_visits_writer.spill_source`), or None to bring them through Spark (``toArrow()``).

    None on the ``jvm`` connector; on a master other than ``local`` (executors do not share the driver's
    file system); and with the observed null counts, which Spark computes from the records' values. One
    directory per checkpoint (one writer per checkpoint), under the temporary directory: ``/tmp``, an
    ``emptyDir`` in the chart.
    """
    python = settings.kafka_connector.pick(python=True, jvm=False)
    if not python or not settings.master.startswith("local") or settings.observe_null_counts:
        return None
    digest = hashlib.sha256(settings.checkpoint_path.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"streamwatch-visits-writer-spill-{digest}"


def prepare_tables(settings: VisitsWriterSettings) -> None:
    """Both tables, idempotently; a :class:`TableError` is logged (``table_incompatible`` or
    ``table_unreachable``) and counted, then raised."""
    try:
        create_tables(settings.visits_table_path, settings.dead_letter_table_path, settings)
    except TableError as exc:
        metrics.TABLE_ERRORS.labels(reason=exc.reason).inc()
        logger.error(f"table_{exc.reason}", extra={"error": str(exc)})
        raise


def create_tables_command(settings: VisitsWriterSettings) -> int:
    """``create-tables``: both tables, idempotently; 1 with one stderr line on a table it cannot use."""
    try:
        prepare_tables(settings)
    except TableError as exc:
        print(f"visits-writer create-tables: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    return EXIT_OK


class VisitsToDelta(StreamingJob):
    """Every micro-batch: parse, classify, append visits and dead letters to Delta exactly once."""

    app_name = "visits-writer"
    query_name = "visits_to_delta"
    query_failures = metrics.QUERY_FAILURES
    settings: VisitsWriterSettings

    def __init__(self, settings: VisitsWriterSettings, shutdown: GracefulShutdown) -> None:
        super().__init__(settings)
        self.spill_directory = spill_directory(settings)
        if self.spill_directory is not None:
            # The shared Python source's planning; the records reach the driver as the read tasks' files.
            self.connector = SpillConnector(self.spill_directory)
        logger.info(
            "batch_collection",
            extra={"spill_directory": str(self.spill_directory) if self.spill_directory else None},
        )
        self.writer = VisitsBatchWriter(
            settings.visits_table_path,
            settings.dead_letter_table_path,
            settings.required_fields,
            simulated_latency_seconds=settings.simulated_latency_seconds,
            # A stop request cuts the simulated latency short instead of waiting it out.
            sleep=shutdown.wait,
            connector=self.connector,
            spill_directory=self.spill_directory,
            store=settings,
        )
        self.required_fields = list(settings.required_fields)
        self.observe_null_counts = settings.observe_null_counts
        self.sla_seconds = settings.sla_seconds

    def prepare(self, shutdown: GracefulShutdown) -> bool:
        # A TableError: the runner then logs job_failed and exits 1, as appending would fail anyway.
        prepare_tables(self.settings)
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
    job = VisitsToDelta(settings, shutdown)
    try:
        return run_streaming_job(job, shutdown)
    finally:
        if job.spill_directory is not None:
            shutil.rmtree(job.spill_directory, ignore_errors=True)
