"""Two replicas in one group: partitions are shared, each partition is observed and its lag reported by
exactly one replica, and when one leaves the other takes over from the committed offset."""

from __future__ import annotations

from observer.conftest import ObserverFactory, assert_exact_cover, coverage, visit, write_checkpoint

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.services import metric_value

SETTINGS = {
    "OBSERVER_WINDOW_RECORDS": "25",
    "OBSERVER_WINDOW_SECONDS": "600",
    "OBSERVER_PROFILE_ENABLED": "false",
}


def covered(observers: ObserverFactory) -> int:
    return sum(e - s + 1 for ranges in coverage(observers.docs("window")).values() for s, e in ranges)


def test_two_replicas_share_partitions_and_hand_over(kafka: KafkaBroker, observers: ObserverFactory) -> None:
    observers.topics(partitions=2)
    for p in (0, 1):
        kafka.produce(observers.source, [(None, visit(i)) for i in range(50)], partition=p)
    write_checkpoint(observers.checkpoint, 0, {0: 50, 1: 30}, observers.source)
    a = observers.start("replica-a", **SETTINGS)
    b = observers.start("replica-b", **SETTINGS)

    def owners() -> dict[str, list[int]]:
        result = {}
        for name, process in (("a", a), ("b", b)):
            events = process.events("partitions_assigned") + process.events("partitions_revoked")
            events.sort(key=lambda e: e["ts"])
            result[name] = events[-1]["owned"] if events else []
        return result

    wait_until(
        lambda: sorted(owners()["a"] + owners()["b"]) == [0, 1] and all(owners().values()),
        60,
        what="one partition per replica",
    )
    for p in (0, 1):
        kafka.produce(observers.topic, [(None, visit(p * 1000 + i)) for i in range(50)], partition=p)
    wait_until(lambda: covered(observers) == 100, 60, what="both partitions observed")
    windows = observers.docs("window")
    owner = {p: "replica-" + name for name, parts in owners().items() for p in parts}
    assert all(d["replica"] == owner[d["partition"]] for d in windows)
    # Since the rebalance, lag of source partition p comes only from the owner of partition p.
    settled = max(e["ts"] for e in a.events("partitions_assigned") + b.events("partitions_assigned"))
    settled = settled.replace("+00:00", "Z")

    def recent_lag() -> list[dict[str, object]]:
        return [d for d in observers.docs("lag") if str(d["observed_at"]) > settled]

    wait_until(lambda: {d["partition"] for d in recent_lag()} == {0, 1}, 30, what="lag of both partitions")
    assert all(d["replica"] == owner[int(str(d["partition"]))] for d in recent_lag())
    a_metrics, b_metrics = a.metrics(), b.metrics()
    for p in (0, 1):
        values = [metric_value(m, "observer_lag_offsets", partition=str(p)) for m in (a_metrics, b_metrics)]
        assert sorted(values, key=lambda v: v is None)[0] == {0: 0, 1: 20}[p]
        assert values.count(None) == 1  # exported by one replica only

    # Replica a leaves; b takes over a's partition from the committed offset and continues.
    a.stop()
    wait_until(lambda: owners()["b"] == [0, 1], 60, what="b owning both partitions")
    for p in (0, 1):
        kafka.produce(observers.topic, [(None, visit(p * 1000 + 50 + i)) for i in range(25)], partition=p)
    wait_until(lambda: covered(observers) == 150, 60, what="new records observed by b")
    cover = coverage(observers.docs("window"))
    assert_exact_cover(cover[0], 75)
    assert_exact_cover(cover[1], 75)
