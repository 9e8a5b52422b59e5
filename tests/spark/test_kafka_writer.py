"""The foreachBatch Kafka writer against a real broker and a real local Spark."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from streamwatch_common.spark.kafka_writer import KafkaWriteError, kafka_batch_writer, write_rows
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import free_port

pytestmark = pytest.mark.spark

SCHEMA = "key binary, value binary, partition int"


def test_writes_every_row_to_its_partition_byte_for_byte(spark: SparkSession, kafka: KafkaBroker) -> None:
    topic = kafka.create_topic(partitions=2)
    rows: list[tuple[bytes | None, bytes, int]] = [
        (f"k{i}".encode(), b"\x00\xfe" + str(i).encode(), i % 2) for i in range(200)
    ]
    rows.append((None, b"no key", 1))
    df = spark.createDataFrame(rows, SCHEMA).repartition(3)  # several producer tasks at once
    write = kafka_batch_writer(topic, {"bootstrap.servers": kafka.bootstrap})

    assert write(df, 7) == len(rows)

    got = kafka.read_all(topic, expected=len(rows))
    assert len(got) == len(rows)
    assert sorted((m.partition(), m.key() or b"", m.value()) for m in got) == sorted(
        (p, k or b"", v) for k, v, p in rows
    )


def test_keeps_row_order_within_a_partition(spark: SparkSession, kafka: KafkaBroker) -> None:
    topic = kafka.create_topic(partitions=2)
    rows = [(b"k", str(i).encode(), 0) for i in range(300)]
    df = spark.createDataFrame(rows, SCHEMA).coalesce(1)
    kafka_batch_writer(topic, {"bootstrap.servers": kafka.bootstrap})(df, 0)

    got = kafka.read_all(topic, expected=len(rows))
    assert [m.value() for m in got] == [v for _k, v, _p in rows]


def test_a_record_that_cannot_be_delivered_fails_the_batch(spark: SparkSession, kafka: KafkaBroker) -> None:
    topic = kafka.create_topic(partitions=2)
    df = spark.createDataFrame([(b"k", b"v", 0), (b"k", b"lost?", 5)], SCHEMA).coalesce(1)
    write = kafka_batch_writer(topic, {"bootstrap.servers": kafka.bootstrap, "message.timeout.ms": 5000})

    # Partition 5 does not exist: the batch must fail (Spark then retries it), not lose the record quietly.
    with pytest.raises(Exception, match=r"(?i)partition"):
        write(df, 0)


def test_an_unacknowledged_record_fails_through_its_delivery_report() -> None:
    # Nothing listens on the port: produce() queues the records, and only their delivery reports (the
    # writer asks librdkafka for error reports only) can tell that they never arrived.
    config = {"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 1500}
    rows = [(b"k", b"v", 0), (b"k", b"w", None)]
    with pytest.raises(KafkaWriteError, match=r"failed for 2 records; first: .*(?i:timed out)"):
        write_rows(rows, "nowhere", {**config, "delivery.report.only.error": True}, keep_partition=True)
