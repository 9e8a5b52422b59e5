"""The lag probe's exported series, with a stand-in for its Kafka client (no broker)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Message, TopicPartition
from observer.conftest import write_checkpoint

from streamwatch_observer import metrics
from streamwatch_observer.lag import LagProbe

TOPIC = "visits-probe-unit"  # a topic label of its own: the metrics registry is shared by the session


class FakeClient:
    """Watermarks ``(0, high)`` per partition and, once assigned, one record per partition ``age`` old."""

    def __init__(self, high: dict[int, int], age: float) -> None:
        self.high = high
        self.age = age
        self.assigned: list[TopicPartition] = []

    def poll(self, timeout: float = 0) -> Message | None:
        if not self.assigned:
            return None
        tp = self.assigned.pop(0)
        stamp = int((time.time() - self.age) * 1000)
        return Message(
            topic=tp.topic, partition=tp.partition, offset=tp.offset, value=b"{}", timestamp=(1, stamp)
        )

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float = 0) -> tuple[int, int]:
        return 0, self.high[tp.partition]

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = list(partitions)

    def unassign(self) -> None:
        self.assigned = []

    def close(self) -> None:
        pass


def probe(checkpoint: Path, client: Any) -> LagProbe:
    config = {"bootstrap.servers": "127.0.0.1:9", "group.id": "unit"}
    return LagProbe(config, TOPIC, checkpoint, 60.0, job="passthrough", factory=lambda _config: client)


def series(gauge: Any, partition: int) -> float | None:
    labels = ("passthrough", TOPIC, str(partition))
    return gauge.labels(*labels)._value.get() if labels in gauge._metrics else None


def test_lag_seconds_go_with_the_committed_position_they_are_measured_from(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 3, {0: 10}, TOPIC)
    lag_probe = probe(tmp_path, FakeClient({0: 25}, age=7.0))
    (lag,) = lag_probe.measure([0])
    assert lag.status == "ok" and lag.lag_offsets == 15
    assert lag.lag_seconds is not None and 6.5 < lag.lag_seconds < 8.0
    assert series(metrics.LAG_OFFSETS, 0) == 15
    assert series(metrics.LAG_SECONDS, 0) == lag.lag_seconds
    # The checkpoint is gone (a job reset): no committed position, so neither lag is known any more; the
    # age of a record the job may never read again must not stay on /metrics (nor keep an alert firing).
    shutil.rmtree(tmp_path / "commits")
    (lag,) = lag_probe.measure([0])
    assert lag.status == "not_started" and lag.lag_offsets is None and lag.lag_seconds is None
    assert series(metrics.LAG_OFFSETS, 0) is None
    assert series(metrics.LAG_SECONDS, 0) is None
