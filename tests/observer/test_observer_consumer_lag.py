"""The observer group's own lag on the /metrics of real observer processes: each replica exports the
partitions it owns, each equal to the broker's committed lag, and drops a partition it loses on a
rebalance, so every partition has one series however the group is scaled."""

from __future__ import annotations

from observer.conftest import ObserverFactory, committed_offsets
from prometheus_client.parser import text_string_to_metric_families

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.services import ServiceProcess

NAME = "observer_consumer_lag_offsets"
SETTINGS = {
    "OBSERVER_WINDOW_RECORDS": "25",
    "OBSERVER_WINDOW_SECONDS": "600",
    "OBSERVER_PROFILE_ENABLED": "false",
}


def exported(process: ServiceProcess, topic: str) -> dict[int, float]:
    """Partition → value of the group-lag series one replica serves on /metrics."""
    return {
        int(sample.labels["partition"]): sample.value
        for family in text_string_to_metric_families(process.metrics())
        for sample in family.samples
        if sample.name == NAME and sample.labels.get("topic") == topic
    }


def test_each_replica_exports_the_group_lag_of_the_partitions_it_owns(
    kafka: KafkaBroker, observers: ObserverFactory
) -> None:
    observers.topics(partitions=2)
    # Windows of 25 records: 50 of partition 0's 60 and 25 of partition 1's 35 are written and committed;
    # 10 of each wait in an open window (it closes only after 600 s), read but not yet committed.
    observers.produce_visits(observers.topic, {0: range(60), 1: range(1000, 1035)})
    a = observers.start("replica-a", **SETTINGS)
    wait_until(
        lambda: committed_offsets(kafka, observers.group, observers.topic, 2) == {0: 50, 1: 25},
        60,
        what="the full windows committed",
    )
    ends = kafka.end_offsets(observers.topic)
    committed = committed_offsets(kafka, observers.group, observers.topic, 2)
    broker = {p: ends[p] - committed[p] for p in (0, 1)}
    assert broker == {0: 10, 1: 10}
    # The consumer's position is at the end of both partitions: a lag from it would read 0.
    wait_until(lambda: exported(a, observers.topic) == broker, 30, what="replica a exporting the group's lag")

    b = observers.start("replica-b", **SETTINGS)

    def shared() -> bool:
        mine, theirs = exported(a, observers.topic), exported(b, observers.topic)
        return len(mine) == 1 and len(theirs) == 1 and mine.keys() | theirs.keys() == {0, 1}

    # After the rebalance each replica serves only the partition it owns: a dropped the one it lost.
    wait_until(shared, 90, what="one partition's group lag on each replica")
    for process in (a, b):
        for partition, value in exported(process, observers.topic).items():
            assert value == broker[partition], (process.log_path.name, partition)
    # Ownership as the replicas log it agrees with what they export.
    (owned_by_a,) = exported(a, observers.topic)
    assert a.events("partitions_assigned")[-1]["owned"] == [owned_by_a]
