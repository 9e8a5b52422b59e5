"""A renewed producer loses nothing: every record the old one still held reaches the topic once, in its
partition's order, and its delivery callback runs once."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message
from prometheus_client import REGISTRY

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_generator.producer import RenewableProducer

RECORDS = 300
PARTITIONS = 3


def _resent(state: str) -> float:
    return REGISTRY.get_sample_value("generator_records_resent_total", {"state": state}) or 0.0


def test_renewing_moves_every_unsent_record_to_the_new_producer_once_in_order(kafka: KafkaBroker) -> None:
    topic = kafka.create_topic(partitions=PARTITIONS)
    delivered: list[tuple[int, bytes]] = []
    failed: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failed.append(err)
            return
        partition, value = msg.partition(), msg.value()
        assert partition is not None and value is not None
        delivered.append((partition, value))

    # A long linger keeps the records in the old producer's queue, unsent, until renew() takes them.
    producer = RenewableProducer(
        {"bootstrap.servers": kafka.bootstrap, "linger.ms": 60_000, "enable.idempotence": True, "acks": "all"}
    )
    for i in range(RECORDS):
        producer.produce(
            topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % PARTITIONS, on_delivery=on_delivery
        )
    producer.producer.poll(0)
    assert len(producer.producer) == RECORDS and not delivered  # still queued: the test means something
    unsent, in_flight = _resent("unsent"), _resent("in_flight")

    old = producer.producer
    producer.renew()
    assert producer.producer is not old
    assert producer.producer.flush(30) == 0

    assert not failed and len(delivered) == RECORDS
    assert _resent("unsent") == unsent + RECORDS and _resent("in_flight") == in_flight
    by_partition = kafka.records_by_partition(topic, expected=RECORDS)
    for partition in range(PARTITIONS):
        expected = [b"v%d" % i for i in range(partition, RECORDS, PARTITIONS)]
        assert [value for _key, value in by_partition[partition]] == expected
