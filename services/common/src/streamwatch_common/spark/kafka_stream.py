"""Open a Kafka stream with the job's connector (:mod:`.connector`): the Python source or Spark's JVM one.

Both take the same options (Spark's Kafka option names), so only the client properties and the format
differ, and the connector holds both. The JVM connector needs ``spark-sql-kafka`` and its dependencies in
``spark.jars`` (the ``*_SPARK_JARS_DIR`` setting; the jars are resolved ahead by ``.ci/maven-libs.sh``,
never at query start).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamwatch_common.spark.connector import PYTHON, Connector, option_text

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Columns both connectors produce; the JVM source adds timestampType and headers.
COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp")


def kafka_stream_options(
    client_config: Mapping[str, Any],
    topics: str,
    *,
    starting_offsets: str = "earliest",
    max_offsets_per_trigger: int | None = None,
    fail_on_data_loss: bool = True,
    connector: Connector = PYTHON,
) -> dict[str, str]:
    """Reader options for ``connector``.

    ``client_config`` is a librdkafka consumer configuration (e.g. ``KafkaSettings.consumer_config()``);
    each property becomes a ``kafka.``-prefixed option, so secrets keep names Spark redacts in plans.
    Consumer-group keys are dropped: both connectors track progress in the checkpoint, not in a group.
    """
    options = connector.client_options(client_config)
    options.update(
        {
            "subscribe": topics,
            "startingOffsets": starting_offsets,
            "failOnDataLoss": option_text(fail_on_data_loss),
        }
    )
    if max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(max_offsets_per_trigger)
    return options


def read_kafka_stream(spark: SparkSession, connector: Connector, options: Mapping[str, str]) -> DataFrame:
    """A streaming DataFrame with ``key, value, topic, partition, offset, timestamp``."""
    return connector.read_stream(spark, options).select(*COLUMNS)
