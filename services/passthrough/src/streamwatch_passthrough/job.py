"""The streaming query: source topic → target topic, byte for byte and partition for partition.

Delivery is at-least-once on the target topic: a batch that fails or is cut short (crash, SIGKILL, a stop
timeout) is not committed in the checkpoint and is written again on restart, so a few records can appear
twice in the target. They keep their source partition, in source order, so a reader can dedupe on the
source offsets. A graceful stop (SIGTERM) writes nothing twice: the running batch finishes and is committed
before the query stops, later batches are refused before writing anything
(see :mod:`streamwatch_common.spark.graceful_stop`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from streamwatch_common.ops import OpsServer
from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_common.spark.graceful_stop import BatchGate, stop_gracefully
from streamwatch_common.spark.kafka_stream import kafka_stream_options, read_kafka_stream
from streamwatch_common.spark.kafka_writer import kafka_batch_writer, spark_kafka_batch_writer
from streamwatch_common.spark.listener import attach_batch_metrics, detach_batch_metrics
from streamwatch_common.spark.session import start_job_session
from streamwatch_passthrough import metrics
from streamwatch_passthrough.settings import PassthroughSettings
from streamwatch_passthrough.topics import wait_for_topics

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

logger = logging.getLogger(__name__)

QUERY_NAME = "passthrough"
_POLL_SECONDS = 1.0


def run(settings: PassthroughSettings, shutdown: GracefulShutdown) -> int:
    """Run until SIGTERM (exit code 0) or until the query fails (1)."""
    active = threading.Event()
    ops = OpsServer(settings.ops_host, settings.ops_port, ready=active.is_set).start()
    try:
        if not wait_for_topics(settings, shutdown):
            return 0
        return _run_query(settings, shutdown, active)
    except Exception:
        # Spark failing to start, the checkpoint unreadable...: one JSON line, then the pod restarts.
        metrics.QUERY_FAILURES.inc()
        logger.exception("passthrough_failed", extra={"checkpoint_path": settings.checkpoint_path})
        return 1
    finally:
        ops.stop()


def _run_query(settings: PassthroughSettings, shutdown: GracefulShutdown, active: threading.Event) -> int:
    spark = start_job_session(
        "streamwatch-passthrough", settings, **settings.connector_conf(settings.kafka_connector)
    )
    pusher = attach_batch_metrics(spark, settings, settings.push_job)
    gate = BatchGate()
    query = _start_query(source_stream(spark, settings), settings, gate)
    logger.info(
        "stream_started", extra={"query_id": str(query.id), "checkpoint_path": settings.checkpoint_path}
    )
    try:
        while not shutdown.wait(_POLL_SECONDS):
            if not query.isActive:
                break
            active.set()
            metrics.QUERY_ACTIVE.set(1)
        active.clear()
        metrics.QUERY_ACTIVE.set(0)
        if shutdown.requested:
            if stop_gracefully(query, gate, settings.stop_timeout_seconds) is not None:
                metrics.QUERY_FAILURES.inc()
            return 0
        metrics.QUERY_FAILURES.inc()
        logger.error("query_failed", extra={"query_id": str(query.id), "error": str(query.exception())})
        return 1
    finally:
        detach_batch_metrics(spark, pusher)
        spark.stop()
        logger.info("spark_stopped")


def source_stream(spark: SparkSession, settings: PassthroughSettings) -> DataFrame:
    """The source stream: only what the copy needs, partition included to keep the alignment."""
    options = kafka_stream_options(
        settings.consumer_config(group_id=QUERY_NAME),
        settings.source_topic,
        starting_offsets=settings.starting_offsets,
        max_offsets_per_trigger=settings.max_records_per_trigger or None,
    )
    return read_kafka_stream(spark, settings.kafka_connector, options).select("key", "value", "partition")


def _start_query(df: DataFrame, settings: PassthroughSettings, gate: BatchGate) -> StreamingQuery:
    # Both connectors write from foreachBatch, so the batch gate and the metrics serve either.
    writer = spark_kafka_batch_writer if settings.kafka_connector == "jvm" else kafka_batch_writer
    write = writer(settings.target_topic, settings.producer_config(), keep_partition=True)

    def copy_batch(batch_df: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        try:
            records = write(batch_df, batch_id)
        except Exception:
            metrics.BATCH_FAILURES.inc()
            logger.exception("batch_failed", extra={"batch_id": batch_id, "topic": settings.target_topic})
            raise
        seconds = time.monotonic() - started
        metrics.BATCHES.inc()
        metrics.RECORDS.inc(records)
        metrics.BATCH_WRITE_SECONDS.observe(seconds)
        metrics.LAST_BATCH_ID.set(batch_id)
        logger.info(
            "batch_copied", extra={"batch_id": batch_id, "records": records, "seconds": round(seconds, 3)}
        )

    interval = f"{settings.trigger_interval_seconds} seconds"
    return (
        df.writeStream.queryName(QUERY_NAME)
        .foreachBatch(gate.guard(copy_batch))
        .option("checkpointLocation", settings.checkpoint_path)
        .trigger(processingTime=interval)
        .start()
    )
