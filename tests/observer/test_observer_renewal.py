"""A consumer that held no broker is replaced through its handle (``streamwatch_common.kafka_renewable``):
the observer leaves the group with the old consumer and joins with a new one, and its windows still cover
every offset of every partition exactly once, committed up to the end."""

from __future__ import annotations

import pytest
from observer.conftest import (
    ObserverFactory,
    assert_exact_cover,
    committed_offsets,
    coverage,
    in_process_observer,
    visit,
)
from prometheus_client import REGISTRY

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until

PARTITIONS = 2
BEFORE, AFTER = 120, 80  # records per partition before and after the renewal


def _renewals() -> float:
    return REGISTRY.get_sample_value("kafka_client_renewals_total", {"client": "observer-consumer"}) or 0.0


def _produce(kafka: KafkaBroker, topic: str, first: int, count: int) -> None:
    for partition in range(PARTITIONS):
        records: list[tuple[bytes | None, bytes]] = [
            (None, visit(partition * 10_000 + first + i)) for i in range(count)
        ]
        kafka.produce(topic, records, partition=partition)


def test_a_renewed_consumer_rejoins_and_the_windows_still_cover_every_offset_once(
    observers: ObserverFactory, kafka: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    observers.topics(PARTITIONS)
    _produce(kafka, observers.topic, 0, BEFORE)
    observer, probe = in_process_observer(
        observers,
        monkeypatch,
        OBSERVER_REPLICA="renewal",
        OBSERVER_PROFILE_ENABLED="false",
        OBSERVER_WINDOW_RECORDS="50",
        OBSERVER_WINDOW_SECONDS="1",
    )
    settings = observer.settings

    def covered(end: int) -> bool:
        observer.step()
        ranges = coverage(observers.docs("window"))
        return all(ranges.get(p) and ranges[p][-1][1] == end - 1 for p in range(PARTITIONS))

    renewals = _renewals()
    observer.start()
    try:
        wait_until(lambda: covered(BEFORE), 90, interval=0, what="windows up to the first records' end")
        old = observer.consumer.client
        observer.consumer.renew("held no broker")  # what renew_if_orphaned does after 30 s without one
        assert observer.consumer.client is not old and observer.writer.consumer is observer.consumer
        assert not observer.ownership.assigned  # the old consumer's partitions were given up
        _produce(kafka, observers.topic, BEFORE, AFTER)
        wait_until(lambda: covered(BEFORE + AFTER), 90, interval=0, what="windows after the renewal")
    finally:
        observer.close()
        probe.close()

    assert _renewals() == renewals + 1
    windows = coverage(observers.docs("window"))
    for partition in range(PARTITIONS):
        assert_exact_cover(windows[partition], BEFORE + AFTER)
    committed = committed_offsets(kafka, settings.group_id, observers.topic, PARTITIONS)
    assert committed == {p: BEFORE + AFTER for p in range(PARTITIONS)}
