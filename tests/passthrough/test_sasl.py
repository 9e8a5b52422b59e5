"""SASL end to end: the generator and the passthrough, on either connector, authenticate with SCRAM-SHA-512
(a Strimzi KafkaUser's mechanism) from the same settings the chart gives them: the mechanism and user in
``KAFKA_PROPERTIES``, the password in ``KAFKA_SASL_PASSWORD``. The Python path hands them to librdkafka as
they are; the JVM path turns them into the Java client's JAAS line. The password never reaches a log."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from streamwatch_dev.kafka import SCRAM_MECHANISM, KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.services import ServiceProcess, service_env
from streamwatch_dev.spark import CONNECTORS, spark_jars_dir

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


@pytest.mark.parametrize("connector", CONNECTORS)
def test_generator_and_passthrough_copy_every_record_over_scram(
    sasl_kafka: KafkaBroker, output_dir: Path, connector: str
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

    jvm = {"PASSTHROUGH_SPARK_JARS_DIR": str(spark_jars_dir())} if connector == "jvm" else {}
    env = service_env(
        **_sasl_env(sasl_kafka),
        **jvm,
        PASSTHROUGH_CONNECTOR=connector,
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

    def by_partition(topic: str) -> dict[int, list[tuple[bytes | None, bytes | None]]]:
        # Read over the harness's plaintext listener: what the authenticated clients wrote, in order.
        result: dict[int, list[tuple[bytes | None, bytes | None]]] = {p: [] for p in produced}
        for msg in sasl_kafka.read_all(topic, expected=TOTAL):
            partition = msg.partition()
            assert partition is not None
            result[partition].append((msg.key(), msg.value()))
        return result

    assert by_partition(target) == by_partition(source), "byte for byte, partition for partition"
    for log in (output_dir / "generator.log", output_dir / "passthrough.log"):
        text = log.read_text(errors="replace")
        assert PASSWORD not in text and "7d3a91" not in text, f"the SASL password is in {log.name}"
