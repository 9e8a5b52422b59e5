"""Profiles delivered to the real profile publisher (its console script, real HTTP), per the contract."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from observer.conftest import ObserverFactory
from profile_publisher import conftest as publisher_fixtures
from profile_publisher.publisher_client import Publisher

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.services import ServiceProcess, metric_value

# The publisher's own fixture: starts its console script with a fresh store, index and token.
start_publisher = publisher_fixtures.start_publisher


def observing_to(
    observers: ObserverFactory, publisher: Publisher, records: int, window: int, token: str
) -> ServiceProcess:
    """An observer delivering its profiles to ``publisher`` with ``token``, windows of ``window`` records
    over ``records`` visits produced to its one-partition topic."""
    observers.topics(partitions=1)
    observers.produce_visits(observers.topic, {0: range(records)})
    return observers.start(
        OBSERVER_WINDOW_RECORDS=str(window),
        OBSERVER_PROFILE_PUBLISHER_URL=publisher.url,
        OBSERVER_PROFILE_PUBLISHER_TOKEN=token,
    )


def test_profile_reaches_the_publisher_and_is_served(
    kafka: KafkaBroker, observers: ObserverFactory, start_publisher: Callable[..., Publisher]
) -> None:
    publisher = start_publisher()
    observer = observing_to(observers, publisher, records=30, window=30, token=publisher.token)
    (written,) = observer.wait_for_event("profile_written", timeout=120)
    assert written["target"] == "publisher"
    assert written["key"] == "passthrough_p0-0-29"
    (report,) = publisher.reports()
    assert report["job"] == "passthrough"
    assert report["rows"] == 30
    assert report["replica"] == "observer"
    page = httpx.get(written["location"], timeout=30)
    assert page.status_code == 200
    for column in ("visit_id", "user_id", "page", "event_time", "context.user.ip"):
        assert column in page.text
    assert not list(observers.profiles.glob("*.html"))  # the directory is only the fallback
    assert metric_value(observer.metrics(), "observer_profiles_total", target="publisher") == 1


def test_refused_delivery_is_counted_and_observation_continues(
    kafka: KafkaBroker, observers: ObserverFactory, start_publisher: Callable[..., Publisher]
) -> None:
    publisher = start_publisher()
    observer = observing_to(observers, publisher, records=20, window=10, token="wrong-token")
    observer.wait_for_event("profile_failed", timeout=120)
    wait_until(lambda: len(observers.docs("window")) == 2, 30, what="both windows written")
    failures = metric_value(observer.metrics(), "observer_profile_failures_total", target="publisher")
    assert failures is not None and failures >= 1
    assert publisher.reports() == []
    assert observer.running
