"""The Python Kafka streaming source against a real broker and a real local Spark."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from confluent_kafka import KafkaError, KafkaException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

from streamwatch_common.errors import SourceError
from streamwatch_common.spark.connector import JVM, PYTHON
from streamwatch_common.spark.kafka_broker_wait import transient
from streamwatch_common.spark.kafka_copy import copy_range
from streamwatch_common.spark.kafka_range_read import KafkaRange, prefetch_bounded, read_range
from streamwatch_common.spark.kafka_source import KafkaStreamReader, split_read_limit
from streamwatch_common.spark.kafka_stream import kafka_stream_options, read_kafka_stream
from streamwatch_common.spark.kafka_writer import task_producer_config
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until

pytestmark = pytest.mark.spark


def _records(partition: int, start: int, count: int) -> list[tuple[bytes | None, bytes]]:
    # Binary values (incl. NUL and invalid UTF-8) prove the bytes travel untouched.
    return [
        (f"k{partition}-{i}".encode(), b"\x00\xff" + f"v{partition}-{i}".encode())
        for i in range(start, start + count)
    ]


def _stream(spark: SparkSession, kafka: KafkaBroker, topic: str, **extra: Any) -> DataFrame:
    options = kafka_stream_options({"bootstrap.servers": kafka.bootstrap}, topic, **extra)
    return read_kafka_stream(spark, PYTHON, options)


def _run_available_now(df: DataFrame, checkpoint: Path, name: str) -> list[dict[str, Any]]:
    """Process everything there is now; return the rows and the per-batch progress."""
    query = (
        df.writeStream.format("memory")
        .queryName(name)
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    assert query.awaitTermination(180), "availableNow query did not finish"
    assert query.exception() is None
    return [row.asDict() for row in df.sparkSession.sql(f"select * from {name}").collect()]


def _last_offsets(checkpoint: Path, batch_id: int) -> Any:
    return json.loads((checkpoint / "offsets" / str(batch_id)).read_text().splitlines()[-1])


def test_reads_exactly_what_was_produced(spark: SparkSession, kafka: KafkaBroker, tmp_path: Path) -> None:
    topic = kafka.create_topic(partitions=2)
    produced = {0: _records(0, 0, 40), 1: _records(1, 0, 25)}
    for p, records in produced.items():
        kafka.produce(topic, records, partition=p)

    started = time.monotonic()
    rows = _run_available_now(_stream(spark, kafka, topic), tmp_path / "ck", "exact_read")
    print(f"first availableNow batch of 65 records: {time.monotonic() - started:.1f}s")

    for p, records in produced.items():
        got = sorted((r for r in rows if r["partition"] == p), key=lambda r: r["offset"])
        assert [(r["key"], r["value"]) for r in got] == records
        assert [r["offset"] for r in got] == list(range(len(records)))
    assert {r["topic"] for r in rows} == {topic}
    assert all(r["timestamp"] is not None for r in rows)
    # Spark's Kafka-source shape, as the observer's checkpoint reader expects it.
    assert _last_offsets(tmp_path / "ck", 0) == {topic: {"0": 40, "1": 25}}


def test_respects_max_records_per_trigger_under_available_now(
    spark: SparkSession, kafka: KafkaBroker, tmp_path: Path
) -> None:
    topic = kafka.create_topic(partitions=2)
    kafka.produce(topic, _records(0, 0, 60), partition=0)
    kafka.produce(topic, _records(1, 0, 20), partition=1)
    checkpoint = tmp_path / "ck"

    rows = _run_available_now(_stream(spark, kafka, topic, max_offsets_per_trigger=25), checkpoint, "limited")

    assert sorted((r["partition"], r["offset"]) for r in rows) == [(0, o) for o in range(60)] + [
        (1, o) for o in range(20)
    ]
    batches = sorted(int(p.name) for p in (checkpoint / "offsets").iterdir() if p.name.isdigit())
    assert batches == [0, 1, 2, 3]  # 80 records, 25 per batch
    previous = {"0": 0, "1": 0}
    for batch in batches:
        end = _last_offsets(checkpoint, batch)[topic]
        assert sum(end.values()) - sum(previous.values()) <= 25
        previous = end
    assert previous == {"0": 60, "1": 20}
    # Shared by backlog: the first batch takes from both partitions, 3:1 like their backlogs.
    assert _last_offsets(checkpoint, 0) == {topic: {"0": 19, "1": 6}}


def test_restart_from_checkpoint_neither_skips_nor_rereads(
    spark: SparkSession, kafka: KafkaBroker, tmp_path: Path
) -> None:
    topic = kafka.create_topic(partitions=2)
    for p in (0, 1):
        kafka.produce(topic, _records(p, 0, 50), partition=p)
    checkpoint = tmp_path / "ck"
    # Keyed by batch id, like an idempotent sink: a batch replayed after the stop overwrites itself.
    outputs: dict[int, list[tuple[int, int]]] = {}

    def collect(batch_df: DataFrame, batch_id: int) -> None:
        outputs[batch_id] = [
            (r.partition, r.offset) for r in batch_df.select("partition", "offset").collect()
        ]

    df = _stream(spark, kafka, topic, max_offsets_per_trigger=20)
    first = (
        df.writeStream.foreachBatch(collect)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime="0.5 seconds")
        .start()
    )
    wait_until(lambda: len(outputs) >= 2, 120, what="two batches before the stop")
    first.stop()
    first_run = dict(outputs)
    assert sum(len(v) for v in first_run.values()) < 100, "stopped mid-stream, before the end"

    for p in (0, 1):
        kafka.produce(topic, _records(p, 50, 30), partition=p)
    second = (
        df.writeStream.foreachBatch(collect)
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    assert second.awaitTermination(180)
    assert second.exception() is None

    everything = [po for batch in outputs.values() for po in batch]
    assert sorted(everything) == [(p, o) for p in (0, 1) for o in range(80)], "each offset exactly once"
    resumed = min(b for b in outputs if b not in first_run or outputs[b] != first_run[b])
    assert resumed >= max(first_run), "committed batches are not read again"
    assert _last_offsets(checkpoint, max(outputs)) == {topic: {"0": 80, "1": 80}}


def test_starting_offsets_latest_and_json(spark: SparkSession, kafka: KafkaBroker, tmp_path: Path) -> None:
    topic = kafka.create_topic(partitions=2)
    for p in (0, 1):
        kafka.produce(topic, _records(p, 0, 10), partition=p)

    latest = _run_available_now(
        _stream(spark, kafka, topic, starting_offsets="latest"), tmp_path / "l", "latest"
    )
    assert latest == []

    spec = json.dumps({topic: {"0": 7, "1": -2}})
    rows = _run_available_now(
        _stream(spark, kafka, topic, starting_offsets=spec), tmp_path / "j", "json_start"
    )
    assert sorted((r["partition"], r["offset"]) for r in rows) == [(0, 7), (0, 8), (0, 9)] + [
        (1, o) for o in range(10)
    ]

    # The planner side directly: what each setting resolves to before the first batch.
    def initial(starting: str) -> Any:
        reader = KafkaStreamReader(
            {"kafka.bootstrap.servers": kafka.bootstrap, "subscribe": topic, "startingOffsets": starting}
        )
        try:
            return reader.initialOffset()
        finally:
            reader.stop()

    assert initial("earliest") == {topic: {"0": 0, "1": 0}}
    assert initial("latest") == {topic: {"0": 10, "1": 10}}
    assert initial(json.dumps({topic: {"1": 4}})) == {topic: {"0": 0, "1": 4}}
    with pytest.raises(SourceError, match="startingOffsets"):
        initial("yesterday")


def test_split_read_limit_shares_by_backlog() -> None:
    start = {"t": {"0": 0, "1": 100, "2": 5}}
    latest = {"t": {"0": 90, "1": 110, "2": 5}}
    end = split_read_limit(start, latest, 10)
    taken = {p: end["t"][p] - start["t"][p] for p in end["t"]}
    assert taken == {"0": 9, "1": 1, "2": 0}
    assert split_read_limit(start, latest, 1000) == latest


def test_reader_default_limit_and_latest_under_limit(kafka: KafkaBroker) -> None:
    topic = kafka.create_topic(partitions=2)
    kafka.produce(topic, _records(0, 0, 6), partition=0)
    reader = KafkaStreamReader(
        {"kafka.bootstrap.servers": kafka.bootstrap, "subscribe": topic, "maxOffsetsPerTrigger": "4"}
    )
    try:
        assert reader.getDefaultReadLimit() == ReadMaxRows(4)
        start = reader.initialOffset()
        assert reader.latestOffset(start, ReadMaxRows(4)) == {topic: {"0": 4, "1": 0}}
        # Spark asks for everything when a trigger requires it; the option must not cap that.
        assert reader.latestOffset(start, ReadAllAvailable()) == {topic: {"0": 6, "1": 0}}
        ranges = reader.partitions(start, {topic: {"0": 4, "1": 0}})
        assert [(r.topic, r.partition, r.start, r.end) for r in ranges] == [(topic, 0, 0, 4)]
    finally:
        reader.stop()


def test_jvm_connector_gets_the_same_options_in_the_java_clients_terms(spark: SparkSession) -> None:
    client = {
        "bootstrap.servers": "kafka:9092",
        "group.id": "x",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "s",
    }
    common = {
        "kafka.bootstrap.servers": "kafka:9092",
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "SCRAM-SHA-512",
        "subscribe": "visits",
        "startingOffsets": "latest",
        "failOnDataLoss": "true",
        "maxOffsetsPerTrigger": "500",
    }
    python = kafka_stream_options(client, "visits", starting_offsets="latest", max_offsets_per_trigger=500)
    assert python == {**common, "kafka.sasl.username": "u", "kafka.sasl.password": "s"}
    options = kafka_stream_options(
        client, "visits", starting_offsets="latest", max_offsets_per_trigger=500, connector=JVM
    )
    assert options == {
        **common,
        "kafka.sasl.jaas.config": (
            'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="s";'
        ),
    }
    # This session has no connector jars (spark.jars): asking for the JVM connector must fail loudly,
    # naming Spark's "kafka" format, rather than silently falling back to the Python source.
    with pytest.raises(Exception, match=r"(?i)kafka"):
        read_kafka_stream(spark, JVM, options)


def test_a_task_prefetches_no_more_than_its_range_unless_told(kafka: KafkaBroker) -> None:
    """A task's consumer asks librdkafka to keep no more records queued than the task reads (the default
    keeps a hundred thousand, all decoded, most dropped at close), and still reads the whole range: here
    a few records from the middle of a partition, with a bound of that few."""
    config = {"bootstrap.servers": kafka.bootstrap}
    assert prefetch_bounded(config, 3)["queued.min.messages"] == 3
    assert prefetch_bounded(config, 0)["queued.min.messages"] == 1
    assert prefetch_bounded(config, 10**7)["queued.min.messages"] == 100_000
    assert prefetch_bounded({**config, "queued.min.messages": 7}, 3)["queued.min.messages"] == 7
    assert "queued.min.messages" not in config

    topic = kafka.create_topic(partitions=1)
    kafka.produce(topic, _records(0, 0, 2_000), partition=0)
    rows = pa.Table.from_batches(list(read_range(config, KafkaRange(topic, 0, 1_000, 1_003))))
    assert rows["offset"].to_pylist() == [1_000, 1_001, 1_002]
    assert rows["value"].to_pylist() == [value for _key, value in _records(0, 1_000, 3)]


def test_a_read_task_and_a_copy_task_wait_for_a_restarting_broker(tmp_path: Path) -> None:
    """librdkafka gives up on an offset look-up while the brokers are down (at once, or after its timeout);
    a task waits for the broker to come back instead of failing the micro-batch (and with it the query and
    the pod), as Spark's JVM consumer does: a read task, and a copy task (:mod:`.kafka_copy`) whose
    producer then delivers every record. Both wait out the same restart, each on its own thread."""
    broker = KafkaBroker.start(tmp_path)  # its own broker: the session's stays up
    try:
        topic = broker.create_topic(partitions=1)
        target = broker.create_topic(partitions=1)
        producer_config = task_producer_config({"bootstrap.servers": broker.bootstrap})
        broker.produce(topic, _records(0, 0, 30), partition=0)
        reader = KafkaStreamReader({"kafka.bootstrap.servers": broker.bootstrap, "subscribe": topic})
        start = reader.initialOffset()
        (task,) = reader.partitions(start, reader.latestOffset(start, ReadAllAvailable()))
        reader.stop()
        broker.stop()
        results: dict[str, Any] = {}

        def run(kind: str) -> None:
            try:
                if kind == "read":
                    batches = read_range(reader.config, task)
                else:
                    batches = copy_range(reader.config, producer_config, target, task)
                results[kind] = sum(b.num_rows for b in batches)
            except Exception as exc:  # noqa: BLE001 - handed to the test thread to fail there
                results[kind] = exc

        workers = [threading.Thread(target=run, args=(kind,)) for kind in ("read", "copy")]
        for worker in workers:
            worker.start()
        time.sleep(20)  # longer than one look-up's own timeout: the tasks must be waiting, not failed
        assert all(w.is_alive() for w in workers), f"gave up while the broker was down: {results}"
        broker.restart()
        for worker in workers:
            worker.join(120)
        assert results == {"read": 30, "copy": 30}
        assert broker.records_by_partition(target, expected=30) == {0: _records(0, 0, 30)}
    finally:
        broker.stop()


@pytest.mark.parametrize(
    ("code", "waited_out"),
    [
        (KafkaError._ALL_BROKERS_DOWN, True),
        (KafkaError._DESTROY_BROKER, True),
        (KafkaError._UNKNOWN_PARTITION, True),
        (KafkaError.NOT_LEADER_FOR_PARTITION, True),
        (KafkaError.SASL_AUTHENTICATION_FAILED, False),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, False),
    ],
)
def test_what_a_broker_restart_looks_like_is_waited_out_and_bad_credentials_are_not(
    code: int, waited_out: bool
) -> None:
    assert transient(KafkaException(KafkaError(code))) is waited_out


@pytest.mark.parametrize("option", ["fetchOffset.numRetries", "fetchoffset.retryintervalms"])
def test_spark_only_retry_options_are_refused_by_name(option: str) -> None:
    # Each offset look-up waits out the broker in one loop: a retry count around it would not mean what
    # it means in Spark's own source.
    with pytest.raises(SourceError, match=r"(?i)fetchOffset\.(numRetries|retryIntervalMs) is for Spark"):
        KafkaStreamReader({"kafka.bootstrap.servers": "127.0.0.1:1", "subscribe": "t", option: "3"})
