"""The in-source copy (``streamwatch_kafka_copy``) against a real broker and a real local Spark."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from streamwatch_common.errors import SourceError
from streamwatch_common.spark.connector import PYTHON
from streamwatch_common.spark.kafka_copy import (
    KafkaCopyReader,
    copy_batch,
    kafka_copy_options,
    read_kafka_copy,
)
from streamwatch_common.spark.kafka_stream import kafka_stream_options
from streamwatch_dev.kafka import KafkaBroker

pytestmark = pytest.mark.spark

Record = tuple[bytes | None, bytes | None]
# Not JSON, not UTF-8, 1,000,000 bytes: the copy does not judge records.
LARGE_VALUE = (b"\xff\x00{" + bytes(range(256)) * 3907)[:1_000_000]


def _produce(kafka: KafkaBroker, topic: str, records: list[Record], partition: int) -> None:
    producer = kafka.producer(**{"message.max.bytes": 2_000_000})
    for key, value in records:
        producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


def _copy(
    spark: SparkSession,
    kafka: KafkaBroker,
    source: str,
    target: str,
    checkpoint: Path,
    *,
    run_ids: list[str] | None = None,
) -> list[int]:
    """Copy everything there is now, 50 records per batch at most; the records each batch copied. The
    query's run id (its Spark jobs' group) is added to ``run_ids``."""
    source_options = kafka_stream_options(
        {"bootstrap.servers": kafka.bootstrap}, source, max_offsets_per_trigger=50, connector=PYTHON
    )
    options = kafka_copy_options(source_options, target, {"bootstrap.servers": kafka.bootstrap})
    counts: list[int] = []

    def write(batch_df: DataFrame, _batch_id: int) -> None:
        counts.append(copy_batch(batch_df))

    query = (
        read_kafka_copy(spark, options)
        .writeStream.foreachBatch(write)
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    if run_ids is not None:
        run_ids.append(str(query.runId))
    try:
        assert query.awaitTermination(180), "availableNow query did not finish"  # raises a batch's error
    finally:
        query.stop()
    return counts


def test_copies_every_range_byte_for_byte_to_the_same_partition_in_order(
    spark: SparkSession, kafka: KafkaBroker, tmp_path: Path
) -> None:
    source, target = kafka.create_topic(partitions=2), kafka.create_topic(partitions=2)
    produced: dict[int, list[Record]] = {
        0: [(f"k{i}".encode(), b"\x00\xfe" + str(i).encode()) for i in range(120)],
        1: [(None, b"no key"), (b"large", LARGE_VALUE), (b"empty", b""), (b"null", None)],
    }
    for p, records in produced.items():
        _produce(kafka, source, records, p)

    run_ids: list[str] = []
    counts = _copy(spark, kafka, source, target, tmp_path / "checkpoint", run_ids=run_ids)

    assert sum(counts) == 124 and max(counts) <= 50, counts
    # Each batch's copy is one stage: no later stage (a count's shuffle) whose lost input would have Spark
    # run finished copy tasks again, copying their ranges twice. Spark groups a query's jobs by its run id.
    tracker = spark.sparkContext.statusTracker()
    jobs = tracker.getJobIdsForGroup(run_ids[0])
    stages = {job: list(info.stageIds) for job in jobs if (info := tracker.getJobInfo(job)) is not None}
    assert len(stages) >= len(counts) and all(len(ids) == 1 for ids in stages.values()), stages
    assert kafka.records_by_partition(target, expected=124) == produced
    # Restarted from its checkpoint with nothing new: nothing copied twice.
    assert sum(_copy(spark, kafka, source, target, tmp_path / "checkpoint")) == 0
    assert kafka.end_offsets(target) == {0: 120, 1: 4}


def test_a_record_that_cannot_be_delivered_fails_the_batch(
    spark: SparkSession, kafka: KafkaBroker, tmp_path: Path
) -> None:
    # The target lacks the source's partition 1: its record cannot go to the same partition.
    source, target = kafka.create_topic(partitions=2), kafka.create_topic(partitions=1)
    _produce(kafka, source, [(b"k", b"v0")], 0)
    _produce(kafka, source, [(b"k", b"v1")], 1)
    checkpoint = tmp_path / "checkpoint"

    with pytest.raises(Exception, match=r"KafkaWriteError: .*Unknown partition"):
        _copy(spark, kafka, source, target, checkpoint)
    assert not any((checkpoint / "commits").glob("[0-9]*")), "a failed batch is not committed"


def test_the_target_topic_is_required() -> None:
    with pytest.raises(SourceError, match="targetTopic"):
        KafkaCopyReader({"kafka.bootstrap.servers": "127.0.0.1:1", "subscribe": "t"})
