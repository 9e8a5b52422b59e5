"""The streaming query's lifecycle: tables, Spark session, listener, query, ops server, graceful stop.

Exit codes: 0 after a requested stop (SIGTERM/SIGINT), 1 when the query fails or a table has an
incompatible schema (2 stays reserved for bad settings, see ``load_settings``).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from streamwatch_common.ops import OpsServer
from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_common.spark.graceful_stop import BatchGate, stop_gracefully
from streamwatch_visits_writer import metrics
from streamwatch_visits_writer.batch import VisitsBatchWriter
from streamwatch_visits_writer.settings import VisitsWriterSettings
from streamwatch_visits_writer.tables import IncompatibleTableError, create_tables

if TYPE_CHECKING:
    from pyspark.sql.streaming.query import StreamingQuery

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
CONSUMER_GROUP = "visits-writer"
QUERY_NAME = "visits_to_delta"
# delta-spark's SQL extension and catalog, for the opt-in JVM sink only. Delta rebuilds the table's
# snapshot with 50 partitions by default: on a 2-core pod that made each append of a small batch take tens
# of seconds (measured here); 2 matches the session's shuffle partitions.
_DELTA_SPARK_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.databricks.delta.snapshotPartitions": "2",
}


def _job_conf(settings: VisitsWriterSettings) -> dict[str, str]:
    """The connector jars and delta-spark's session extensions, needed only on the JVM path."""
    if settings.connector != "jvm":
        return {}
    return {**settings.connector_conf(settings.connector), **_DELTA_SPARK_CONF}


def spark_conf(settings: VisitsWriterSettings) -> dict[str, str]:
    """This job's Spark properties: the shared caps, delta-spark's extensions on the JVM path, the user's."""
    return settings.spark_session_conf(**_job_conf(settings))


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


class _State:
    """What the readiness probe looks at; filled in as the job starts."""

    query: StreamingQuery | None = None

    def ready(self) -> bool:
        return self.query is not None and self.query.isActive


def run(settings: VisitsWriterSettings, shutdown: GracefulShutdown) -> int:
    """Run the query until SIGTERM (exit 0) or until it fails (exit 1)."""
    state = _State()
    ops = OpsServer(settings.ops_host, settings.ops_port, ready=state.ready).start()
    try:
        if create_tables_command(settings) != EXIT_OK:
            return EXIT_FAILED
        return _run_query(settings, shutdown, state)
    except Exception:
        # Start-up failures (Spark, a bad starting-offsets value, an unreachable table path) end here.
        metrics.QUERY_FAILURES.inc()
        logger.exception("visits_writer_failed")
        return EXIT_FAILED
    finally:
        ops.stop()


def _run_query(settings: VisitsWriterSettings, shutdown: GracefulShutdown, state: _State) -> int:
    from streamwatch_common.spark.kafka_stream import kafka_stream_options, read_kafka_stream
    from streamwatch_common.spark.listener import VISITS_SYNC, attach_batch_metrics, detach_batch_metrics
    from streamwatch_common.spark.session import start_job_session

    spark = start_job_session("visits-writer", settings, **_job_conf(settings))
    if shutdown.requested:  # SIGTERM while the JVM was starting
        spark.stop()
        return EXIT_OK
    pusher = attach_batch_metrics(spark, settings, settings.push_job, VISITS_SYNC)
    if pusher is None:
        logger.warning("pushgateway_disabled", extra={"reason": "VISITS_WRITER_PUSHGATEWAY_URL is not set"})
    options = kafka_stream_options(
        settings.consumer_config(CONSUMER_GROUP),
        settings.topic,
        starting_offsets=settings.starting_offsets,
        max_offsets_per_trigger=settings.max_records_per_trigger,
    )
    writer = VisitsBatchWriter(
        settings.visits_table_path,
        settings.dead_letter_table_path,
        settings.required_fields,
        simulated_latency_seconds=settings.simulated_latency_seconds,
        # A stop request cuts the simulated latency short instead of waiting it out.
        sleep=shutdown.wait,
        connector=settings.connector,
    )
    gate = BatchGate()
    stream_writer = (
        read_kafka_stream(spark, settings.connector, options)
        .writeStream.queryName(QUERY_NAME)
        .foreachBatch(gate.guard(writer))
        .option("checkpointLocation", settings.checkpoint_path)
    )
    if settings.trigger_interval_seconds > 0:
        stream_writer = stream_writer.trigger(processingTime=f"{settings.trigger_interval_seconds} seconds")
    query = stream_writer.start()
    writer.bind(str(query.id))
    state.query = query
    logger.info(
        "query_started",
        extra={"query_id": str(query.id), "run_id": str(query.runId), "checkpoint": settings.checkpoint_path},
    )
    try:
        while query.isActive and not shutdown.requested:
            shutdown.wait(1.0)
        if shutdown.requested:
            # The batch that is writing finishes (its simulated latency is cut short) and is committed in
            # the checkpoint before the query stops. Only after a stop timeout is it replayed on restart,
            # and then the Delta transaction check keeps the replay from writing twice.
            if stop_gracefully(query, gate, settings.stop_timeout_seconds) is not None:
                metrics.QUERY_FAILURES.inc()
            return EXIT_OK
        error = query.exception()
        metrics.QUERY_FAILURES.inc()
        logger.error("query_failed", extra={"query_id": str(query.id), "error": str(error)})
        return EXIT_FAILED
    finally:
        detach_batch_metrics(spark, pusher)
        spark.stop()
        logger.info("visits_writer_stopped")
