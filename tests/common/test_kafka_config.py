"""Kafka client configuration from the environment, used against the real broker."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from streamwatch_common.kafka import REBOOTSTRAP_AFTER_MS, KafkaSettings, LibrdkafkaLog
from streamwatch_common.logs import configure_logging
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import free_port


def test_property_layers_and_precedence(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b1:9092,b2:9092")
    clean_env.setenv("KAFKA_CLIENT_ID", "gen-1")
    clean_env.setenv("KAFKA_PROPERTIES", '{"socket.timeout.ms": 1000, "acks": "1"}')
    clean_env.setenv("KAFKA_PRODUCER_PROPERTIES", '{"linger.ms": 50, "socket.timeout.ms": 2000}')
    clean_env.setenv("KAFKA_CONSUMER_PROPERTIES", '{"session.timeout.ms": 6000}')
    settings = KafkaSettings()  # required fields come from the environment

    producer = settings.producer_config(**{"linger.ms": 5})
    assert producer["bootstrap.servers"] == "b1:9092,b2:9092"
    assert producer["client.id"] == "gen-1"
    assert producer["enable.idempotence"] is True
    assert producer["acks"] == "1"  # the operator's choice beats the default
    assert producer["socket.timeout.ms"] == 2000  # producer-only properties beat shared ones
    assert producer["linger.ms"] == 5  # code overrides beat everything
    assert "session.timeout.ms" not in producer

    consumer = settings.consumer_config("g1")
    assert consumer["group.id"] == "g1"
    assert consumer["enable.auto.commit"] is False
    assert consumer["session.timeout.ms"] == 6000
    assert "linger.ms" not in consumer
    assert settings.admin_config()["socket.timeout.ms"] == 1000


def test_librdkafka_clients_keep_their_connections_and_the_java_client_never_sees_that_key(
    clean_env: pytest.MonkeyPatch,
) -> None:
    from streamwatch_common.spark.connector import PYTHON

    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b1:9092")
    settings = KafkaSettings()
    for config in (settings.producer_config(), settings.consumer_config("g"), settings.admin_config()):
        assert config["enable.sparse.connections"] is False
        assert config["metadata.recovery.rebootstrap.trigger.ms"] == REBOOTSTRAP_AFTER_MS
    java = PYTHON.client_options(settings.producer_config(), producer=True)
    assert java["kafka.bootstrap.servers"] == "b1:9092"
    assert not [key for key in java if "sparse" in key or "rebootstrap" in key], java
    clean_env.setenv("KAFKA_PROPERTIES", '{"enable.sparse.connections": true}')
    assert KafkaSettings().producer_config()["enable.sparse.connections"] is True  # the operator may opt back


def test_configs_work_against_the_real_broker(clean_env: pytest.MonkeyPatch, kafka: KafkaBroker) -> None:
    for name, value in kafka.env().items():
        clean_env.setenv(name, value)
    settings = KafkaSettings()
    topic = kafka.create_topic(partitions=1)

    producer = Producer(settings.producer_config())
    for i in range(5):
        producer.produce(topic, key=b"k", value=b"v%d" % i)
    assert producer.flush(15) == 0

    consumer = Consumer(settings.consumer_config(f"g-{uuid.uuid4().hex[:8]}"))
    try:
        consumer.subscribe([topic])
        values: list[bytes] = []
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value() or b"")
            if len(values) == 5:
                break
        assert values == [b"v%d" % i for i in range(5)]
    finally:
        consumer.close()


def test_librdkafka_lines_become_json_events(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("demo", "json", "INFO")
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "logger": LibrdkafkaLog()})
    producer.produce("nowhere", value=b"x")  # makes the client try to connect: "Connection refused"
    out = ""
    for _ in range(30):
        producer.poll(0.1)  # log lines are served from poll()
        out += capsys.readouterr().out
        if "librdkafka_log" in out:
            break
    producer.purge()
    docs = [json.loads(line) for line in out.splitlines()]
    assert docs, "no librdkafka line was logged for an unreachable broker"
    for doc in docs:
        assert doc["event"] == "librdkafka_log"
        assert doc["facility"] and doc["client"] and doc["detail"]
