"""The observer group's own lag, against a real broker: newest offset minus the group's committed offset,
equal to what the broker answers for the group, exported only for the measured partitions, and dropped
when a partition is forgotten or its lag becomes unknown."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Message, TopicPartition
from observer.conftest import visit
from prometheus_client import REGISTRY, generate_latest

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.services import metric_value
from streamwatch_observer.consumer_lag import ConsumerLag

NAME = "observer_consumer_lag_offsets"


def exported(topic: str, partition: int) -> float | None:
    """The sample as /metrics serves it (the observer's ops server serves this registry)."""
    return metric_value(generate_latest(REGISTRY).decode(), NAME, topic=topic, partition=str(partition))


def failures() -> float:
    return (
        metric_value(
            generate_latest(REGISTRY).decode(), "observer_lag_failures_total", reason="group_offsets"
        )
        or 0
    )


def broker_lag(kafka: KafkaBroker, group: str, topic: str, partitions: list[int]) -> dict[int, int | None]:
    """What Kafka's tools show for the group (kafka-consumer-groups.sh: log-end offset minus the committed
    one), asked through the admin API rather than the consumer the code under test uses; None: no commit."""
    admin = kafka.admin()
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    answer = admin.list_consumer_group_offsets([request])[group].result(timeout=15)
    ends = kafka.end_offsets(topic)
    return {
        tp.partition: ends[tp.partition] - tp.offset if tp.offset >= 0 else None
        for tp in answer.topic_partitions
    }


def consume_and_commit(consumer: Consumer, topic: str, partition: int, records: int) -> None:
    """Read ``records`` records of one partition from its start and commit after the last, as a member of
    the group would."""
    consumer.assign([TopicPartition(topic, partition, 0)])
    read: list[Message] = []
    while len(read) < records:
        message = consumer.poll(5)
        assert message is not None, f"only {len(read)} of {records} records came"
        assert message.error() is None, message.error()
        read.append(message)
    consumer.commit(message=read[-1], asynchronous=False)
    consumer.unassign()


def test_group_lag_equals_the_brokers_and_follows_commits_and_new_records(kafka: KafkaBroker) -> None:
    topic = kafka.create_topic(partitions=2)
    group = f"observer-{uuid.uuid4().hex[:8]}"
    kafka.produce(topic, [(None, visit(i)) for i in range(30)], partition=0)
    kafka.produce(topic, [(None, visit(i)) for i in range(20)], partition=1)
    consumer = kafka.consumer(group)
    try:
        consume_and_commit(consumer, topic, 0, 12)
        lag = ConsumerLag(topic)

        # Partition 0: 30 records, 12 committed. Partition 1: nothing committed, so the group will read
        # it from its oldest record: all 20 are its lag (the broker has no number for it yet).
        assert lag.measure(consumer, [0, 1]) == {0: 18, 1: 20}
        assert broker_lag(kafka, group, topic, [0, 1]) == {0: 18, 1: None}
        assert exported(topic, 0) == 18 and exported(topic, 1) == 20

        # New records raise it, a commit lowers it; each time it is the broker's number.
        kafka.produce(topic, [(None, visit(i)) for i in range(30, 35)], partition=0)
        consume_and_commit(consumer, topic, 1, 15)
        assert lag.measure(consumer, [0, 1]) == broker_lag(kafka, group, topic, [0, 1]) == {0: 23, 1: 5}
        assert exported(topic, 0) == 23 and exported(topic, 1) == 5

        # The newest offsets asked of another client (the observer asks its lag probe's, which does not
        # fetch): the same numbers.
        ends = kafka.consumer(f"ends-{uuid.uuid4().hex[:8]}")
        try:
            assert lag.measure(consumer, [0, 1], ends=ends) == {0: 23, 1: 5}
        finally:
            ends.close()

        # Partition 0 revoked: its series goes (its next owner exports it); partition 1 stays.
        lag.forget([0])
        assert exported(topic, 0) is None and exported(topic, 1) == 5
        assert lag.measure(consumer, [1]) == {1: 5}
        assert exported(topic, 0) is None, "a partition not measured is not exported"
    finally:
        consumer.close()


def test_a_group_starting_at_the_end_has_no_lag_before_its_first_commit(kafka: KafkaBroker) -> None:
    topic = kafka.create_topic(partitions=1)
    kafka.produce(topic, [(None, visit(i)) for i in range(7)], partition=0)
    consumer = kafka.consumer(f"observer-{uuid.uuid4().hex[:8]}", **{"auto.offset.reset": "latest"})
    try:
        assert ConsumerLag(topic, auto_offset_reset="latest").measure(consumer, [0]) == {0: 0}
        assert ConsumerLag(topic, auto_offset_reset="earliest").measure(consumer, [0]) == {0: 7}
    finally:
        consumer.close()


def test_an_unanswered_lag_is_counted_and_its_old_number_removed(kafka: KafkaBroker) -> None:
    topic = kafka.create_topic(partitions=1)
    kafka.produce(topic, [(None, visit(i)) for i in range(4)], partition=0)
    group = f"observer-{uuid.uuid4().hex[:8]}"
    lag = ConsumerLag(topic, timeout=1.0)
    reachable = kafka.consumer(group)
    # A client of the same group whose bootstrap address has no broker behind it (a closed port).
    unreachable = Consumer({"bootstrap.servers": "127.0.0.1:9", "group.id": group})
    try:
        assert lag.measure(reachable, [0]) == {0: 4}
        assert exported(topic, 0) == 4
        before = failures()
        assert lag.measure(unreachable, [0]) == {0: None}
        assert exported(topic, 0) is None, "an old lag must not keep steering an autoscaler"
        assert failures() == before + 1
    finally:
        reachable.close()
        unreachable.close()
