"""A Spark job's end offsets committed to a consumer group of its own, against a real broker, read back
with Kafka's own ``kafka-consumer-groups.sh --describe`` (its class, on the Maven jars): the lag it shows,
the owner each offset carries, a group someone else committed to left alone, a group with a member retried
until it has none."""

from __future__ import annotations

import logging
import uuid

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from prometheus_client import REGISTRY, generate_latest

from streamwatch_common.spark.group_commit import GroupCommitter, owner_metadata
from streamwatch_dev.kafka import GroupPartition, KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.services import metric_value


def counted(name: str, **labels: str) -> float:
    return metric_value(generate_latest(REGISTRY).decode(), name, **labels) or 0


def lags(kafka: KafkaBroker, group: str) -> dict[int, int | None]:
    return {p: row.lag for (_, p), row in kafka.describe_group(group).items()}


def committed(kafka: KafkaBroker, group: str, topic: str) -> dict[int, tuple[int, str]]:
    """Offset and metadata of each committed partition of ``topic`` (asked through the admin API)."""
    admin = kafka.admin()
    answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(15)
    return {tp.partition: (tp.offset, tp.metadata) for tp in answer.topic_partitions if tp.topic == topic}


def committer(kafka: KafkaBroker, group: str, job: str) -> GroupCommitter:
    return GroupCommitter(
        {"bootstrap.servers": kafka.bootstrap}, group, job=job, checkpoint=f"/checkpoints/{job}", timeout=10
    )


@pytest.fixture
def topic(kafka: KafkaBroker) -> str:
    name = kafka.create_topic(partitions=2)
    kafka.produce(name, [(None, b"x")] * 10, partition=0)
    kafka.produce(name, [(None, b"y")] * 7, partition=1)
    return name


def test_end_offsets_become_the_groups_lag_in_kafkas_own_tool(kafka: KafkaBroker, topic: str) -> None:
    group, job = f"spark-{uuid.uuid4().hex[:8]}", f"job-{uuid.uuid4().hex[:6]}"
    commits = committer(kafka, group, job)
    try:
        commits.submit({(topic, 0): 4, (topic, 1): 7})
        wait_until(lambda: lags(kafka, group) == {0: 6, 1: 0}, 30, what="the group's lag 6 and 0")
        assert kafka.describe_group(group)[(topic, 0)] == GroupPartition(4, 10, 6)
        # Each offset says whose it is; a newer batch moves the group on.
        owner = owner_metadata(job, f"/checkpoints/{job}")
        assert committed(kafka, group, topic) == {0: (4, owner), 1: (7, owner)}
        commits.submit({(topic, 0): 10, (topic, 1): 7})
        wait_until(lambda: lags(kafka, group) == {0: 0, 1: 0}, 30, what="the group's lag 0")
        assert counted("streamwatch_group_commits_total", job=job) == 2
        assert not commits.refused
    finally:
        commits.close()


def test_a_group_someone_else_committed_to_is_refused_and_left_alone(
    kafka: KafkaBroker, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    group = f"shared-{uuid.uuid4().hex[:8]}"
    first, second = f"first-{uuid.uuid4().hex[:6]}", f"second-{uuid.uuid4().hex[:6]}"
    owner = committer(kafka, group, first)
    intruder = committer(kafka, group, second)
    try:
        owner.submit({(topic, 0): 3})
        wait_until(lambda: lags(kafka, group) == {0: 7}, 30, what="the first job's commit")
        with caplog.at_level(logging.ERROR, logger="streamwatch_common.spark.group_commit"):
            intruder.submit({(topic, 0): 9, (topic, 1): 7})
            wait_until(lambda: intruder.refused, 30, what="the second job refused")
        (refusal,) = [r for r in caplog.records if r.getMessage() == "group_commit_refused"]
        assert refusal.__dict__["foreign_partitions"] == [f"{topic}/0"]
        assert counted("streamwatch_group_commit_failures_total", job=second, reason="shared_group") == 1
        assert counted("streamwatch_group_commits_total", job=second) == 0
        # The refused job commits nothing more this run; the group's owner carries on.
        intruder.submit({(topic, 0): 10, (topic, 1): 7})
        owner.submit({(topic, 0): 5})
        wait_until(lambda: lags(kafka, group) == {0: 5}, 30, what="the first job's next commit")
        assert set(committed(kafka, group, topic)) == {0}
        assert counted("streamwatch_group_commit_failures_total", job=second, reason="shared_group") == 1
    finally:
        owner.close()
        intruder.close()


def test_a_consumers_offsets_are_not_overwritten(kafka: KafkaBroker, topic: str) -> None:
    group, job = f"consumers-{uuid.uuid4().hex[:8]}", f"job-{uuid.uuid4().hex[:6]}"
    consumer = kafka.consumer(group)
    consumer.commit(offsets=[TopicPartition(topic, 1, 2)], asynchronous=False)
    consumer.close()
    commits = committer(kafka, group, job)
    try:
        commits.submit({(topic, 0): 10, (topic, 1): 7})
        wait_until(lambda: commits.refused, 30, what="the commit refused")
        ((partition, (offset, _)),) = committed(kafka, group, topic).items()
        assert (partition, offset) == (1, 2)
    finally:
        commits.close()


def test_a_group_with_a_member_is_retried_until_the_member_leaves(
    kafka: KafkaBroker, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    group, job = f"joined-{uuid.uuid4().hex[:8]}", f"job-{uuid.uuid4().hex[:6]}"
    member = kafka.consumer(group)
    member.subscribe([topic])
    wait_until(lambda: member.poll(0.5) is not None or bool(member.assignment()), 30, what="a member joined")
    commits = committer(kafka, group, job)
    try:
        with caplog.at_level(logging.WARNING, logger="streamwatch_common.spark.group_commit"):
            commits.submit({(topic, 0): 4, (topic, 1): 7})
            failed = "streamwatch_group_commit_failures_total"
            wait_until(lambda: counted(failed, job=job, reason="kafka") >= 1, 30, what="a failed commit")
        assert any(r.getMessage() == "group_commit_failed" for r in caplog.records)
        assert counted("streamwatch_group_commits_total", job=job) == 0
        member.close()  # leaves the group: the next try commits the same offsets
        wait_until(lambda: lags(kafka, group) == {0: 6, 1: 0}, 60, what="the retried commit")
        assert not commits.refused
    finally:
        commits.close()
