"""A lag measurement that waits for a broker does not stop the observation: the observer's windows are
written and committed while its lag probe is still waiting for an answer (the probe asks a broker that is
not there here; in a cluster, a slow broker or checkpoint store does the same). That a measurement made on
the worker is reported is shown by every lag test of the observer."""

from __future__ import annotations

from pathlib import Path

import pytest
from observer.conftest import ObserverFactory, assert_exact_cover, committed_offsets, coverage, visit

from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import free_port, wait_until
from streamwatch_observer.lag import LagProbe
from streamwatch_observer.observer import Observer
from streamwatch_observer.settings import ObserverSettings
from streamwatch_observer.sink import ObservationSink

PARTITIONS = 2
RECORDS = 120  # per partition: three windows of 40
# Each of the probe's broker requests gives up after this long; a measurement makes four of them.
PROBE_TIMEOUT_SECONDS = 3.0


def test_windows_are_written_while_a_lag_measurement_waits_for_its_broker(
    observers: ObserverFactory, kafka: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    observers.topics(PARTITIONS)
    for partition in range(PARTITIONS):
        records: list[tuple[bytes | None, bytes]] = [
            (None, visit(partition * 10_000 + i)) for i in range(RECORDS)
        ]
        kafka.produce(observers.topic, records, partition=partition)
    env = observers.env(
        OBSERVER_REPLICA="lag-thread", OBSERVER_PROFILE_ENABLED="false", OBSERVER_WINDOW_RECORDS="40"
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = ObserverSettings()
    sink = ObservationSink(settings.elasticsearch_client(), settings.index, settings.required_fields)
    sink.ensure_template()
    nowhere = {
        **settings.consumer_config(f"{settings.group_id}-lag-probe"),
        "bootstrap.servers": f"127.0.0.1:{free_port()}",
    }
    probe = LagProbe(
        nowhere,
        settings.source_topic,
        Path(settings.checkpoint_path),
        settings.lag_evaluation_window_seconds,
        job=settings.job,
        timeout=PROBE_TIMEOUT_SECONDS,
    )
    observer = Observer(
        settings=settings,
        shutdown=GracefulShutdown(),
        consumer_config=settings.consumer_config(settings.group_id),
        sink=sink,
        probe=probe,
        profiler=None,
    )
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
