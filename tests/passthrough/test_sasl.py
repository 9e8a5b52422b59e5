"""SASL: every Kafka client authenticates with SCRAM-SHA-512 (a Strimzi KafkaUser's mechanism) from the
settings the chart gives it: the mechanism and user in ``KAFKA_PROPERTIES``, the password in
``KAFKA_SASL_PASSWORD``. The Python path hands them to librdkafka as they are: its source's reader and its
writer are run here directly, as a Spark task runs them. The JVM path turns them into the Java client's
JAAS line: the generator and the passthrough on the ``jvm`` connector run end to end as processes. The
password never reaches a log."""

from __future__ import annotations

import json
import logging
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from pyspark.sql.streaming.datasource import ReadAllAvailable

from streamwatch_common.errors import SourceError
from streamwatch_common.kafka import KafkaSettings
from streamwatch_common.spark.kafka_copy import KafkaCopyReader, copy_range, kafka_copy_options
from streamwatch_common.spark.kafka_range_read import read_range
from streamwatch_common.spark.kafka_source import KafkaStreamReader
from streamwatch_common.spark.kafka_stream import kafka_stream_options
from streamwatch_common.spark.kafka_writer import write_rows
from streamwatch_dev.kafka import SCRAM_MECHANISM, KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.services import ServiceProcess, service_env
from streamwatch_dev.spark import spark_jars_dir

pytestmark = pytest.mark.spark

USER = "streamwatch"
# Quotes and a backslash: the JAAS line must escape them, librdkafka takes them as they are.
PASSWORD = 'pw-"q\\uote-7d3a91'
TOTAL = 300


@pytest.fixture(scope="module")
def sasl_kafka(output_root: Path) -> Iterator[KafkaBroker]:
    broker = KafkaBroker.start(output_root / "_infra", scram_users={USER: PASSWORD})
    yield broker
    broker.stop()
    shutil.rmtree(broker.data_dir, ignore_errors=True)


def _sasl_env(broker: KafkaBroker, password: str = PASSWORD) -> dict[str, str]:
    properties = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": SCRAM_MECHANISM,
        "sasl.username": USER,
    }
    return {
        "KAFKA_BOOTSTRAP_SERVERS": broker.sasl_bootstrap,
        "KAFKA_PROPERTIES": json.dumps(properties),
        "KAFKA_SASL_PASSWORD": password,
    }


def test_the_listener_refuses_a_wrong_password(sasl_kafka: KafkaBroker) -> None:
    # The failed handshake reaches the client's error callback; the request itself then fails on transport.
    errors: list[KafkaError] = []
    env = _sasl_env(sasl_kafka, password="not-the-password")
    config: dict[str, Any] = {
        "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
        **json.loads(env["KAFKA_PROPERTIES"]),
        "sasl.password": env["KAFKA_SASL_PASSWORD"],
        "error_cb": errors.append,
        "log_level": 0,
    }
    admin = AdminClient(config)
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    admin.poll(1)  # serves the error callback
    assert KafkaError._AUTHENTICATION in [e.code() for e in errors], errors


def test_the_python_sources_planner_fails_at_once_on_a_wrong_password(
    sasl_kafka: KafkaBroker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # What no wait can mend fails the look-up in its one retry loop; no second loop retries it.
    for name, value in _sasl_env(sasl_kafka, password="not-the-password").items():
        monkeypatch.setenv(name, value)
    settings = KafkaSettings()
    reader = KafkaStreamReader(kafka_stream_options(settings.consumer_config(group_id="sasl"), "visits"))
    caplog.set_level(logging.WARNING)
    try:
        with pytest.raises(SourceError, match="unavailable") as failed:
            reader.initialOffset()
    finally:
        reader.stop()
    assert "not-the-password" not in str(failed.value)
    retries = [r.getMessage() for r in caplog.records if r.name.startswith("streamwatch_common.spark")]
    assert retries == [], retries


def test_the_python_paths_reader_and_writer_copy_over_scram(
    sasl_kafka: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _sasl_env(sasl_kafka).items():
        monkeypatch.setenv(name, value)
    settings = KafkaSettings()
    source, target = sasl_kafka.create_topic(partitions=2), sasl_kafka.create_topic(partitions=2)
    records = [(f"k{i}".encode(), f"v{i}".encode(), i % 2) for i in range(TOTAL)]
    assert write_rows(records, source, settings.producer_config(), keep_partition=True) == TOTAL

    reader_options = kafka_stream_options(settings.consumer_config(group_id="sasl"), source)
    reader = KafkaStreamReader(reader_options)
    try:
        start = reader.initialOffset()
        tasks = reader.partitions(start, reader.latestOffset(start, ReadAllAvailable()))
    finally:
        reader.stop()
    batches = [batch for task in tasks for batch in read_range(reader.config, task)]
    rows = [
        (key, value, partition)
        for batch in batches
        for key, value, partition in zip(
            batch.column("key").to_pylist(),
            batch.column("value").to_pylist(),
            batch.column("partition").to_pylist(),
            strict=True,
        )
    ]
    assert sorted(rows) == sorted(records)
    assert write_rows(rows, target, settings.producer_config(), keep_partition=True) == TOTAL
    assert sasl_kafka.end_offsets(target) == sasl_kafka.end_offsets(source) == {0: TOTAL // 2, 1: TOTAL // 2}

    # The passthrough's default path: each task copies its range itself, its producer given the
    # properties as the job's options carry them (``producer.``-prefixed strings).
    copied = sasl_kafka.create_topic(partitions=2)
    options = kafka_copy_options(reader_options, copied, settings.producer_config())
    copier = KafkaCopyReader(options)
    counts = [
        b.num_rows for task in tasks for b in copy_range(copier.config, copier.producer_config, copied, task)
    ]
    assert sum(counts) == TOTAL
    assert sasl_kafka.records_by_partition(copied) == sasl_kafka.records_by_partition(source)


def test_generator_and_jvm_passthrough_copy_every_record_over_scram(
    sasl_kafka: KafkaBroker, output_dir: Path
) -> None:
    source, target = sasl_kafka.create_topic(partitions=2), sasl_kafka.create_topic(partitions=2)
    generator = ServiceProcess(
        "streamwatch-generator",
        output_dir / "generator.log",
        service_env(**_sasl_env(sasl_kafka), GENERATOR_TOPIC=source, GENERATOR_TOTAL=str(TOTAL)),
    )
    generator.start()
    assert generator.wait(60) == 0, generator.tail()
    produced = sasl_kafka.end_offsets(source)
    assert sum(produced.values()) == TOTAL

    env = service_env(
        **_sasl_env(sasl_kafka),
        PASSTHROUGH_SPARK_JARS_DIR=str(spark_jars_dir()),
        PASSTHROUGH_CONNECTOR="jvm",
        PASSTHROUGH_SOURCE_TOPIC=source,
        PASSTHROUGH_TARGET_TOPIC=target,
        PASSTHROUGH_CHECKPOINT_PATH=str(output_dir / "checkpoint"),
        PASSTHROUGH_SPARK_MASTER="local[2]",
        PASSTHROUGH_TRIGGER_INTERVAL_SECONDS="0.5",
    )
    job = ServiceProcess("streamwatch-passthrough", output_dir / "passthrough.log", env)
    job.start_ready(timeout=120, path="/readyz")
    try:
        wait_until(lambda: sasl_kafka.end_offsets(target) == produced, 180, what=f"{TOTAL} records copied")
    finally:
        job.signal(signal.SIGTERM)
        assert job.wait(60) == 0, job.tail()

    # Read over the harness's plaintext listener: what the authenticated clients wrote, in order.
    copied, original = (sasl_kafka.records_by_partition(t, expected=TOTAL) for t in (target, source))
    assert copied == original, "byte for byte, partition for partition"
    for log in (output_dir / "generator.log", output_dir / "passthrough.log"):
        text = log.read_text(errors="replace")
        assert PASSWORD not in text and "7d3a91" not in text, f"the SASL password is in {log.name}"
