"""The passthrough as a :class:`StreamingJob`: source topic → target topic, byte for byte and partition for
partition.

On the ``python`` connector the Python source's read tasks copy their offset ranges themselves
(:mod:`streamwatch_common.spark.kafka_copy`, ``PASSTHROUGH_COPY_PATH=source_tasks``, the default) and
``foreachBatch`` only runs them and counts; otherwise the records become Spark rows that the connector's
``foreachBatch`` Kafka writer produces (``spark_rows``).

Delivery is at-least-once on the target topic: a batch that fails or is cut short (crash, SIGKILL, a stop
timeout) is not committed in the checkpoint and is written again on restart, so a few records can appear
twice in the target. They keep their source partition, in source order, so a reader can dedupe on the
source offsets. A graceful stop (SIGTERM) writes nothing twice: the shared runner lets the running batch
finish and be committed before the query stops, later batches are refused before writing anything
(:mod:`streamwatch_common.spark.runner`, :mod:`streamwatch_common.spark.graceful_stop`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_common.spark.connector import BatchWriter
from streamwatch_common.spark.kafka_copy import copy_batch, kafka_copy_options, read_kafka_copy
from streamwatch_common.spark.runner import StreamingJob, run_streaming_job
from streamwatch_passthrough import metrics
from streamwatch_passthrough.settings import PassthroughSettings
from streamwatch_passthrough.topics import wait_for_topics

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)


class Passthrough(StreamingJob):
    """Copies every micro-batch to the target topic, each record to its source partition."""

    app_name = "streamwatch-passthrough"
    query_name = "passthrough"
    query_failures = metrics.QUERY_FAILURES
    query_active = metrics.QUERY_ACTIVE

    def __init__(self, settings: PassthroughSettings) -> None:
        super().__init__(settings)
        self.passthrough_settings = settings
        self.target_topic = settings.target_topic
        self.in_source_tasks = settings.copies_in_source_tasks
        if self.in_source_tasks:
            self._write: BatchWriter = lambda batch_df, _batch_id: copy_batch(batch_df)
        else:
            self._write = self.connector.kafka_batch_writer(
                settings.target_topic, settings.producer_config(), keep_partition=True
            )

    def prepare(self, shutdown: GracefulShutdown) -> bool:
        return wait_for_topics(self.passthrough_settings, shutdown)

    def stream(self, spark: SparkSession, options: dict[str, str]) -> DataFrame:
        if not self.in_source_tasks:
            return super().stream(spark, options)
        # The read tasks copy the records themselves; write_batch's action runs them.
        copy = kafka_copy_options(options, self.target_topic, self.passthrough_settings.producer_config())
        return read_kafka_copy(spark, copy)

    def select(self, stream: DataFrame) -> DataFrame:
        # Only what the copy needs, partition included to keep the alignment.
        return stream.select("key", "value", "partition")

    def write_batch(self, batch_df: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        try:
            records = self._write(batch_df, batch_id)
        except Exception:
            metrics.BATCH_FAILURES.inc()
            logger.exception("batch_failed", extra={"batch_id": batch_id, "topic": self.target_topic})
            raise
        seconds = time.monotonic() - started
        metrics.BATCHES.inc()
        metrics.RECORDS.inc(records)
        metrics.BATCH_WRITE_SECONDS.observe(seconds)
        metrics.LAST_BATCH_ID.set(batch_id)
        logger.info(
            "batch_copied", extra={"batch_id": batch_id, "records": records, "seconds": round(seconds, 3)}
        )


def run(settings: PassthroughSettings, shutdown: GracefulShutdown) -> int:
    """Run until SIGTERM (exit code 0) or until the query fails (1)."""
    return run_streaming_job(Passthrough(settings), shutdown)
