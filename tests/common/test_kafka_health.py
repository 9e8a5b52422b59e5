"""A client's broker handles, read from librdkafka's own statistics: a client with a broker, even an
unreachable one, is left alone; only one holding none for the whole grace period is to be replaced. A
group consumer that watches its group is also replaced once its coordinator has been unknown past its
session timeout and the grace; one in its group is left alone."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from prometheus_client import REGISTRY

from streamwatch_common import kafka_health
from streamwatch_common.kafka_health import RENEW_AFTER_SECONDS, BrokerLoss, broker_handles, group_state
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import free_port, wait_until


def _statistics(config: dict[str, Any]) -> dict[str, Any]:
    """The first statistics document a real producer with ``config`` emits."""
    documents: list[str] = []
    producer = Producer({**config, "statistics.interval.ms": 200, "stats_cb": documents.append})

    def emitted() -> bool:
        producer.poll(0.1)
        return bool(documents)

    wait_until(emitted, 15, what="a statistics document")
    stats: dict[str, Any] = json.loads(documents[-1])
    return stats


def test_a_connected_client_holds_the_broker_it_learned_from_metadata(kafka: KafkaBroker) -> None:
    topic = kafka.create_topic(partitions=1)
    documents: list[str] = []
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap, "statistics.interval.ms": 200, "stats_cb": documents.append}
    )
    producer.produce(topic, b"x")
    assert producer.flush(15) == 0

    def learned() -> bool:
        producer.poll(0.1)
        return bool(documents) and any(n.endswith("/1") for n in broker_handles(json.loads(documents[-1])))

    wait_until(learned, 15, what="statistics listing the broker learned from metadata")


def test_a_client_whose_broker_is_down_still_holds_it_and_is_not_judged_orphaned() -> None:
    stats = _statistics({"bootstrap.servers": f"127.0.0.1:{free_port()}"})
    handles = broker_handles(stats)
    assert len(handles) == 1 and handles[0].endswith("/bootstrap"), stats["brokers"]
    loss = BrokerLoss("unit")
    loss.observe(handles, now=0.0)
    assert loss.reason(now=10 * RENEW_AFTER_SECONDS) is None


def test_internal_and_logical_handles_are_not_brokers() -> None:
    stats = {
        "brokers": {
            ":0/internal": {"source": "internal", "nodeid": -1},
            "GroupCoordinator": {"source": "logical", "nodeid": -1},
        }
    }
    assert broker_handles(stats) == []
    learned = {"brokers": {**stats["brokers"], "b:9092/1": {"source": "learned"}}}
    assert broker_handles(learned) == ["b:9092/1"]


def test_holding_no_broker_counts_only_after_the_grace_period_and_a_broker_clears_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loss = BrokerLoss("unit")
    with caplog.at_level(logging.WARNING):
        loss.observe([], now=100.0)
        loss.observe([], now=110.0)  # still the first moment counts
    assert loss.reason(now=100.0 + RENEW_AFTER_SECONDS - 0.1) is None
    assert loss.reason(now=100.0 + RENEW_AFTER_SECONDS) == "held no broker"
    assert [r.getMessage() for r in caplog.records].count("kafka_client_holds_no_broker") == 1
    loss.observe(["b:9092/1"], now=200.0)
    assert loss.reason(now=1000.0) is None


def test_a_renewal_is_counted_and_starts_a_clean_record() -> None:
    loss = BrokerLoss("unit-renewal")
    loss.observe([], now=time.monotonic() - 2 * RENEW_AFTER_SECONDS)
    assert loss.reason(time.monotonic()) == "held no broker"
    before = REGISTRY.get_sample_value("kafka_client_renewals_total", {"client": "unit-renewal"}) or 0.0
    loss.renewed("test")
    assert REGISTRY.get_sample_value("kafka_client_renewals_total", {"client": "unit-renewal"}) == before + 1
    assert loss.reason(time.monotonic() + 10 * RENEW_AFTER_SECONDS) is None


def test_an_unreadable_statistics_document_is_counted_and_changes_nothing() -> None:
    loss = BrokerLoss("unit-unreadable")
    loss.observe([], now=0.0)
    loss.on_stats("{not json")
    labels = {"client": "unit-unreadable"}
    assert REGISTRY.get_sample_value("kafka_client_stats_unreadable_total", labels) == 1
    assert loss.reason(now=RENEW_AFTER_SECONDS) == "held no broker"


def test_configure_turns_statistics_on_but_keeps_an_operators_interval() -> None:
    loss = BrokerLoss("unit")
    assert loss.configure({"bootstrap.servers": "b:1"})["statistics.interval.ms"] > 0
    config = loss.configure({"bootstrap.servers": "b:1", "statistics.interval.ms": 60_000})
    assert config["statistics.interval.ms"] == 60_000 and config["stats_cb"] == loss.on_stats


def _group_consumer(loss: BrokerLoss, bootstrap: str, topic: str) -> Consumer:
    """A subscribed group consumer whose statistics feed ``loss``, with the broker's shortest session timeout
    (group.min.session.timeout.ms)."""
    config = {"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "session.timeout.ms": 6000}
    consumer = Consumer({**loss.configure(config), "statistics.interval.ms": 200, "log_level": 0})
    consumer.subscribe([topic])
    return consumer


def test_a_consumer_that_cannot_find_its_coordinator_is_orphaned_after_its_session_and_a_member_is_not(
    kafka: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka_health, "COORDINATOR_GRACE_SECONDS", 1.0)
    topic = kafka.create_topic(partitions=1)
    # Its only broker never answers: it keeps that handle (so it does not hold "no broker") and looks for
    # its coordinator for good.
    lost = BrokerLoss("unit-lost-coordinator", coordinator=True)
    stranded = _group_consumer(lost, f"127.0.0.1:{free_port()}", topic)
    joined = BrokerLoss("unit-joined", coordinator=True)
    member = _group_consumer(joined, kafka.bootstrap, topic)
    assert lost.coordinator_after == joined.coordinator_after == 7.0  # the session + the grace
    start = time.monotonic()
    try:

        def serve(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                stranded.consume(10, timeout=0.05)
                member.consume(10, timeout=0.05)

        def judged() -> str | None:
            serve(0.1)
            return lost.reason(time.monotonic()) if member.assignment() else None

        assert wait_until(judged, 30, interval=0.1, what="the stranded consumer judged") == (
            "group coordinator unknown"
        )
        assert time.monotonic() - start >= 7.0
        serve(1.0)  # statistics of the member in its group
        assert member.assignment() and joined.reason(time.monotonic()) is None
    finally:
        stranded.close()
        member.close()


def test_the_coordinator_counts_only_for_a_client_that_watches_its_group_and_up_clears_it() -> None:
    watching = BrokerLoss("unit-watching", coordinator=True)
    watching.configure({"bootstrap.servers": "b:1", "session.timeout.ms": 10_000})
    after = 10.0 + kafka_health.COORDINATOR_GRACE_SECONDS
    watching.observe_group("query-coord", now=100.0)
    watching.observe_group("wait-coord", now=105.0)  # still the first moment counts
    assert watching.reason(now=100.0 + after - 0.1) is None
    assert watching.reason(now=100.0 + after) == "group coordinator unknown"
    watching.observe_group("up", now=200.0)
    assert watching.reason(now=1000.0) is None
    producer_like = BrokerLoss("unit-not-watching")
    producer_like.configure({"bootstrap.servers": "b:1"})
    producer_like.observe_group("query-coord", now=0.0)
    assert producer_like.reason(now=10_000.0) is None
    assert group_state({"brokers": {}}) is None
    assert group_state({"cgrp": {"state": "up", "stateage": 1}}) == "up"
