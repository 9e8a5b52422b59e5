"""A lag measurement that waits for a broker does not stop the observation: the observer's windows are
written and committed while its lag probe is still waiting for an answer (the probe asks a broker that is
not there here; in a cluster, a slow broker or checkpoint store does the same). That a measurement made on
the worker is reported is shown by every lag test of the observer."""

from __future__ import annotations

import pytest
from observer.conftest import (
    ObserverFactory,
    assert_exact_cover,
    committed_offsets,
    coverage,
    in_process_observer,
)

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import free_port, wait_until

PARTITIONS = 2
RECORDS = 120  # per partition: three windows of 40
# Each of the probe's broker requests gives up after this long; a measurement asks once per partition.
PROBE_TIMEOUT_SECONDS = 5.0


def test_windows_are_written_while_a_lag_measurement_waits_for_its_broker(
    observers: ObserverFactory, kafka: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    observers.topics(PARTITIONS)
    ids = {p: range(p * 10_000, p * 10_000 + RECORDS) for p in range(PARTITIONS)}
    observers.produce_visits(observers.topic, ids)
    observer, probe = in_process_observer(
        observers,
        monkeypatch,
        probe_overrides={"bootstrap.servers": f"127.0.0.1:{free_port()}"},
        probe_timeout=PROBE_TIMEOUT_SECONDS,
        OBSERVER_REPLICA="lag-thread",
        OBSERVER_PROFILE_ENABLED="false",
        OBSERVER_WINDOW_RECORDS="40",
    )
    settings = observer.settings
    expected = dict.fromkeys(range(PARTITIONS), RECORDS)

    def covered_and_committed() -> bool:
        observer.step()
        ranges = coverage(observers.docs("window"))
        if not all(ranges.get(p) and ranges[p][-1][1] == RECORDS - 1 for p in range(PARTITIONS)):
            return False
        return committed_offsets(kafka, settings.group_id, observers.topic, PARTITIONS) == expected

    observer.start()
    try:
        wait_until(covered_and_committed, 60, interval=0, what="windows over every record, committed")
        assert observer.lag_worker.running, "the lag measurement had finished before the windows were written"
    finally:
        observer.close()
        probe.close()

    windows = coverage(observers.docs("window"))
    for partition in range(PARTITIONS):
        assert_exact_cover(windows[partition], RECORDS)
