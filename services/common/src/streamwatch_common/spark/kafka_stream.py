"""Open a Kafka stream with either connector: the Python source (default) or Spark's JVM one (opt-in).

Both take the same options (Spark's Kafka option names), so only the format differs. The JVM connector
needs ``spark-sql-kafka`` and its dependencies in ``spark.jars`` (the ``*_SPARK_JARS_DIR`` setting; the
jars are resolved ahead by ``.ci/maven-libs.sh``, never at query start).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from streamwatch_common.kafka import LIBRDKAFKA_ONLY
from streamwatch_common.spark.java_client import java_client_properties
from streamwatch_common.spark.kafka_source import FORMAT_NAME, register_kafka_source

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

KafkaConnector = Literal["python", "jvm"]
# Columns both connectors produce; the JVM source adds timestampType and headers.
COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp")


def kafka_stream_options(
    client_config: Mapping[str, Any],
    topics: str,
    *,
    starting_offsets: str = "earliest",
    max_offsets_per_trigger: int | None = None,
    fail_on_data_loss: bool = True,
    connector: KafkaConnector = "python",
) -> dict[str, str]:
    """Reader options for ``connector``.

    ``client_config`` is a librdkafka consumer configuration (e.g. ``KafkaSettings.consumer_config()``);
    each property becomes a ``kafka.``-prefixed option, so secrets keep names Spark redacts in plans.
    Consumer-group keys are dropped: both connectors track progress in the checkpoint, not in a group.
    """
    options = spark_client_options(client_config, connector=connector)
    options.update(
        {
            "subscribe": topics,
            "startingOffsets": starting_offsets,
            "failOnDataLoss": _text(fail_on_data_loss),
        }
    )
    if max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(max_offsets_per_trigger)
    return options


def spark_client_options(
    client_config: Mapping[str, Any], producer: bool = False, connector: KafkaConnector = "python"
) -> dict[str, str]:
    """Client properties as ``kafka.``-prefixed options, without the keys the connectors manage themselves.

    Consumer-group keys are dropped for a reader: progress lives in the checkpoint, not in a group. For the
    ``jvm`` connector the librdkafka properties become the Java client's (:mod:`.java_client`; raises
    :class:`~streamwatch_common.spark.java_client.JavaClientConfigError` for one it cannot translate).
    """
    managed = () if producer else ("group.id", "enable.auto.commit", "auto.offset.reset")
    config = {key: value for key, value in client_config.items() if key not in managed}
    # The Java client's properties leave out librdkafka's own already; the Python source is not given them.
    if connector == "jvm":
        config = java_client_properties(config)
    else:
        config = {key: value for key, value in config.items() if key not in LIBRDKAFKA_ONLY}
    return {f"kafka.{key}": _text(value) for key, value in config.items()}


def read_kafka_stream(
    spark: SparkSession,
    connector: KafkaConnector,
    options: Mapping[str, str],
) -> DataFrame:
    """A streaming DataFrame with ``key, value, topic, partition, offset, timestamp``."""
    if connector == "jvm":
        # Canonical Spark Kafka source; needs org.apache.spark:spark-sql-kafka-0-10 on the classpath.
        reader = spark.readStream.format("kafka")
    else:
        register_kafka_source(spark)
        reader = spark.readStream.format(FORMAT_NAME)
    return reader.options(**options).load().select(*COLUMNS)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
