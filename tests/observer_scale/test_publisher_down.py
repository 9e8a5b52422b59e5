"""The profile publisher unreachable: observation continues, each delivery gives up after its bounded
retries, and every failure is counted."""

from __future__ import annotations

import time

from observer.conftest import ObserverFactory, visit

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import free_port, wait_until
from streamwatch_dev.services import metric_value


def test_publisher_down_observation_continues_with_bounded_retries(
    kafka: KafkaBroker, observers: ObserverFactory
) -> None:
    observers.topics(partitions=1)
    kafka.produce(observers.topic, [(None, visit(i)) for i in range(40)], partition=0)
    started = time.monotonic()
    observer = observers.start(
        OBSERVER_WINDOW_RECORDS="10",
        OBSERVER_WINDOW_SECONDS="600",
        OBSERVER_PROFILE_MAX_ROWS="10",
        OBSERVER_PROFILE_PUBLISHER_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        OBSERVER_PROFILE_PUBLISHER_RETRIES="2",
        OBSERVER_PROFILE_PUBLISHER_TIMEOUT_SECONDS="2",
    )
    # Windows are written and committed whatever the publisher does.
    wait_until(lambda: len(observers.docs("window")) == 4, 60, what="all four windows written")
    windows_done = time.monotonic() - started
    failed = observer.wait_for_event("profile_failed", timeout=120)
    failures = metric_value(observer.metrics(), "observer_profile_failures_total", target="publisher")
    assert failures is not None and failures >= 1
    assert failures == len(failed)
    # Bounded: every failed report was tried exactly retries + 1 times, then given up.
    for event in failed:
        attempts = [e for e in observer.events("profile_delivery_retry") if e["key"] == event["key"]]
        assert len(attempts) == 3, attempts
    assert observer.running
    print(f"publisher down: windows written after {windows_done:.1f} s, profile failures {failures:.0f}")
