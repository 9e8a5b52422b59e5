"""The in-source copy: the Python Kafka source's read tasks copy their planned range to a target topic
themselves, so the records never become Spark rows.

The ``streamwatch_kafka_copy`` format plans micro-batches exactly as the ``streamwatch_kafka`` source
(:class:`~streamwatch_common.spark.kafka_source.KafkaStreamReader`: the same options, offsets, read limits
and checkpoint). Each read task consumes its range ``[start, end)`` of one source partition
(:func:`~streamwatch_common.spark.kafka_range_read.read_messages`, which waits out a broker restart) and
produces every record, key and value byte for byte, to the same partition of the target topic in source
order (:func:`~streamwatch_common.spark.kafka_writer.write_messages`: idempotent, ``acks=all``, every
acknowledgement awaited; one failed delivery fails the task, and so the batch). Only then does the task hand
Spark one row per record copied, holding nothing but the source partition: Spark's ``numInputRows`` stays
the number of records, and no key or value crosses into the JVM.

Nothing is copied until an action runs the batch's tasks, so the copy happens inside the ``foreachBatch``
function (:func:`copy_batch`: the action's only stage, which no later stage can make Spark run again),
behind the job's batch gate like any writer: a batch refused on SIGTERM
has copied nothing, and Spark commits ``commits/N`` only after the function returned. Delivery is
at-least-once, as with the ``foreachBatch`` writer: a batch cut short is copied again on restart.

Usage::

    options = kafka_copy_options(source_options, "processed_visits", settings.producer_config())
    stream = read_kafka_copy(spark, options)
    stream.writeStream.foreachBatch(lambda df, batch_id: copy_batch(df)).start()
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import DataSource, InputPartition

from streamwatch_common.errors import SourceError
from streamwatch_common.spark.connector import option_text
from streamwatch_common.spark.kafka_range_read import KafkaRange, read_messages
from streamwatch_common.spark.kafka_source import KafkaStreamReader
from streamwatch_common.spark.kafka_writer import counted_write, task_producer_config, write_messages

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

FORMAT_NAME = "streamwatch_kafka_copy"
#: One row per record copied: its source partition (all a count needs, and the cheapest column to pass).
SCHEMA = "partition int"
#: The option naming the target topic.
TARGET_TOPIC = "targetTopic"
#: Prefix of the producer's librdkafka properties among the options (``producer.sasl.password`` keeps a
#: name Spark redacts in plans, like the source's ``kafka.`` options).
PRODUCER_PREFIX = "producer."


def kafka_copy_options(
    source_options: Mapping[str, str], target_topic: str, producer_config: Mapping[str, Any]
) -> dict[str, str]:
    """The source's options (:func:`~streamwatch_common.spark.kafka_stream.kafka_stream_options` on the
    ``python`` connector) plus the target topic and the producer's properties."""
    options = dict(source_options)
    options[TARGET_TOPIC] = target_topic
    options.update({PRODUCER_PREFIX + key: option_text(value) for key, value in producer_config.items()})
    return options


def read_kafka_copy(spark: SparkSession, options: Mapping[str, str]) -> DataFrame:
    """A streaming DataFrame whose batches, once an action runs them, have copied their records."""
    spark.dataSource.register(KafkaCopyDataSource)
    return spark.readStream.format(FORMAT_NAME).options(**options).load()


def copy_batch(batch_df: DataFrame) -> int:
    """Run the copy tasks of one micro-batch (``foreachBatch``); the number of records copied.

    The copy tasks must be the action's last stage. ``count()`` would make them a shuffle's map stage:
    Spark runs a finished map task again when its output is lost with its executor (a deleted executor
    pod, after its tasks are done and before the count has read them), and a copy task run again copies
    its range twice. A finished task of the last stage is never run again. So the rows go to Spark's
    ``noop`` sink, one stage, and are counted on the way (:func:`~.kafka_writer.counted_write`: an
    observed metric, no shuffle)."""
    return counted_write(batch_df, lambda writer: writer.format("noop").save())


class KafkaCopyDataSource(DataSource):
    """The ``streamwatch_kafka_copy`` format: Kafka topics copied by the read tasks (see the module)."""

    @classmethod
    def name(cls) -> str:
        return FORMAT_NAME

    def schema(self) -> str:
        return SCHEMA

    def streamReader(self, schema: StructType) -> KafkaCopyReader:
        return KafkaCopyReader(dict(self.options))


class KafkaCopyReader(KafkaStreamReader):
    """Plans like the ``streamwatch_kafka`` source; each task copies its range instead of returning it."""

    def __init__(self, options: dict[str, str]) -> None:
        source: dict[str, str] = {}
        producer: dict[str, str] = {}
        target = ""
        for key, value in options.items():
            lowered = key.lower()
            if lowered == TARGET_TOPIC.lower():
                target = value.strip()
            elif lowered.startswith(PRODUCER_PREFIX):
                producer[key[len(PRODUCER_PREFIX) :]] = value
            else:
                source[key] = value
        super().__init__(source)
        if not target:
            raise SourceError(f"option {TARGET_TOPIC} (the topic to copy to) is required")
        self.target_topic = target
        self.producer_config = task_producer_config(
            {"bootstrap.servers": self.config["bootstrap.servers"], **producer}
        )

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        task = KafkaRange.of(partition)
        return copy_range(self.config, self.producer_config, self.target_topic, task, self.fail_on_data_loss)


def copy_range(
    config: Mapping[str, Any],
    producer_config: Mapping[str, Any],
    target_topic: str,
    task: KafkaRange,
    fail_on_data_loss: bool = True,
) -> Iterator[pa.RecordBatch]:
    """Copy the records ``[task.start, task.end)`` of one source partition to the same partition of
    ``target_topic``; once every record is acknowledged, one row per record copied (its partition).

    Raises :class:`~streamwatch_common.spark.kafka_writer.KafkaWriteError` if a record was not delivered.
    """
    import pyarrow as pa

    partition = task.partition
    messages = read_messages(config, task, fail_on_data_loss)
    copied = write_messages(messages, target_topic, partition, producer_config)
    if copied:
        column = pa.repeat(pa.scalar(partition, pa.int32()), copied)
        yield pa.RecordBatch.from_arrays([column], names=["partition"])
