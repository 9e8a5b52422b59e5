"""The passthrough's lag as Kafka's own tools see it: with ``PASSTHROUGH_COMMIT_GROUP`` the real passthrough
commits each batch's end offsets to that group, and ``kafka-consumer-groups.sh --describe`` (its class, on
the Maven jars) then shows, per partition, the same lag the real observer reads from the checkpoint.

While the job runs the two may differ by the batch in flight (the group is committed after the checkpoint);
here they are compared once the job has settled: caught up and stopped, then records added behind it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from observer.conftest import ObserverFactory, source_lags, start_passthrough

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.spark import newest_committed

pytestmark = pytest.mark.spark


def group_lags(kafka: KafkaBroker, group: str) -> dict[int, int | None]:
    return {p: row.lag for (_, p), row in kafka.describe_group(group).items()}


def test_kafka_consumer_groups_shows_the_lag_the_observer_reads_from_the_checkpoint(
    kafka: KafkaBroker, observers: ObserverFactory, output_dir: Path, processes: list[Any]
) -> None:
    group = f"spark-passthrough-{uuid.uuid4().hex[:8]}"
    observers.topics(partitions=2)
    observers.produce_visits(observers.source, {0: range(30), 1: range(100, 120)})
    passthrough = start_passthrough(
        kafka, observers, output_dir / "passthrough.log", processes, PASSTHROUGH_COMMIT_GROUP=group
    )
    wait_until(lambda: group_lags(kafka, group) == {0: 0, 1: 0}, 120, what="the group caught up")
    passthrough.stop()
    assert newest_committed(observers.checkpoint, observers.source) == {0: 30, 1: 20}

    # Records the stopped job has not read: the group's lag and the observer's grow by the same counts.
    observers.produce_visits(observers.source, {0: range(30, 43), 1: range(120, 124)})
    rows = kafka.describe_group(group)
    assert {p: (r.current_offset, r.log_end_offset, r.lag) for (_, p), r in rows.items()} == {
        0: (30, 43, 13),
        1: (20, 24, 4),
    }
    observer = observers.start()

    wait_until(
        lambda: source_lags(observers, observer) == {0: 13, 1: 4}, 60, what="the observer's lag 13 and 4"
    )
    assert group_lags(kafka, group) == {p: int(v or 0) for p, v in source_lags(observers, observer).items()}
    assert passthrough.events("group_commit_failed") == passthrough.events("group_commit_refused") == []
