"""Faults: the observer SIGKILLed mid-window, the search server down, bad records of every kind."""

from __future__ import annotations

import json
import re

import pytest
from confluent_kafka import TopicPartition
from observer.conftest import (
    ObserverFactory,
    assert_exact_cover,
    committed_offsets,
    coverage,
    visit,
    written_ranges,
)

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.search import SearchServer
from streamwatch_dev.services import metric_value

NO_PROFILE = {"OBSERVER_PROFILE_ENABLED": "false"}


def covered(observers: ObserverFactory) -> int:
    return sum(e - s + 1 for ranges in coverage(observers.docs("window")).values() for s, e in ranges)


def test_sigkill_mid_window_then_restart_misses_and_duplicates_nothing(
    kafka: KafkaBroker, observers: ObserverFactory
) -> None:
    observers.topics(partitions=2)
    observers.produce_visits(observers.topic, {0: range(120), 1: range(1000, 1070)})
    settings = {"OBSERVER_WINDOW_RECORDS": "50", "OBSERVER_WINDOW_SECONDS": "600", **NO_PROFILE}
    first = observers.start("first", **settings)
    first.wait_for_event("window_written", count=3, timeout=60)
    # Windows p0 100-119 and p1 50-69 are open: SIGKILL now, mid-window.
    first.kill()
    assert committed_offsets(kafka, observers.group, observers.topic, 2) == {0: 100, 1: 50}
    observers.produce_visits(observers.topic, {0: range(120, 150), 1: range(1070, 1100)})
    second = observers.start("second", **settings)
    wait_until(lambda: covered(observers) == 250, 60, what="windows covering all 250 records")
    cover = coverage(observers.docs("window"))
    assert_exact_cover(cover[0], 150)
    assert_exact_cover(cover[1], 100)
    # Each window was written by exactly one run: no replay wrote anything twice.
    second.wait_for_event("window_written", count=2, timeout=20)  # its line follows the searchable bulk
    ranges = written_ranges(first) + written_ranges(second)
    assert sorted(ranges) == sorted(set(ranges))
    assert sorted(written_ranges(second)) == [(0, 100, 149), (1, 50, 99)]
    docs = observers.docs("window")
    assert len(docs) == len({d["_id"] for d in docs}) == 5
    assert sum(d["all_events"] for d in docs) == 250
    wait_until(
        lambda: committed_offsets(kafka, observers.group, observers.topic, 2) == {0: 150, 1: 100},
        20,
        what="offsets committed after the last windows",
    )


@pytest.mark.osmem
def test_search_outage_retries_without_commit_then_catches_up(
    kafka: KafkaBroker, search: SearchServer, observers: ObserverFactory
) -> None:
    observers.topics(partitions=1)
    observers.produce_visits(observers.topic, {0: range(60)})
    observer = observers.start(OBSERVER_WINDOW_RECORDS="20", OBSERVER_WINDOW_SECONDS="600", **NO_PROFILE)
    observer.wait_for_event("window_written", count=3, timeout=60)
    search.go_down()
    try:
        observers.produce_visits(observers.topic, {0: range(60, 100)})
        observer.wait_for_event("sink_write_failed", count=3, timeout=60)
        text = observer.metrics()
        assert (metric_value(text, "observer_sink_failures_total", sink="elasticsearch") or 0) >= 3
        assert metric_value(text, "observer_paused") == 1
        assert committed_offsets(kafka, observers.group, observers.topic, 1) == {0: 60}
        assert observer.running
    finally:
        search.come_back()
    wait_until(lambda: covered(observers) == 100, 60, what="windows written after the outage")
    assert_exact_cover(coverage(observers.docs("window"))[0], 100)
    # A window's documents are searchable before the observer logs it written (the line follows the bulk).
    observer.wait_for_event("window_written", count=5, timeout=20)
    ranges = written_ranges(observer)
    assert sorted(ranges) == [(0, 0, 19), (0, 20, 39), (0, 40, 59), (0, 60, 79), (0, 80, 99)]
    wait_until(
        lambda: committed_offsets(kafka, observers.group, observers.topic, 1) == {0: 100},
        20,
        what="offsets committed after the outage",
    )
    assert metric_value(observer.metrics(), "observer_paused") == 0
    # Lag measured during the outage was kept and written afterwards.
    outage = [e for e in observer.events("sink_write_failed")]
    assert outage and len(observers.docs("lag")) >= 2


def test_bad_records_are_counted_and_never_crash(kafka: KafkaBroker, observers: ObserverFactory) -> None:
    observers.topics(partitions=1)
    big = visit(9, page="x" * 1_000_000)
    values: list[bytes | None] = [
        visit(0),
        b"plain text, not JSON",
        b"",
        None,  # a tombstone
        b"null",
        b"[1, 2, 3]",
        b'"just a string"',
        json.dumps({"visit_id": "v-7", "user_id": 123, "page": "p", "event_time": "t"}).encode(),
        json.dumps({"visit_id": ["v-8"], "user_id": "u", "page": "p", "event_time": "t"}).encode(),
        big,
        visit(10, user_id="", page="", event_time=""),
        visit(11, context="flat instead of nested"),
        b"\xff\xfe\x00garbage",
        b'{"visit_id": "v-13", "user_id": "u", "page": "p", "event_time": "t"',
        visit(14),
        json.dumps(
            {
                "visit_id": "v-15",
                "we.ird key!": None,
                "": 1,
                "user_id": "u",
                "page": "p",
                "event_time": "2026-11-22T10:00:00.000Z",
                "context": {"a b": None},
            }
        ).encode(),
    ]
    producer = kafka.producer(**{"message.max.bytes": 2_000_000})
    for value in values:
        producer.produce(observers.topic, value=value, partition=0)
    assert producer.flush(30) == 0
    observer = observers.start(OBSERVER_WINDOW_RECORDS="100", OBSERVER_WINDOW_SECONDS="2", **NO_PROFILE)
    wait_until(lambda: covered(observers) == len(values), 60, what="the window with the bad records")
    (doc,) = observers.docs("window")
    assert doc["all_events"] == 16
    # text, empty, tombstone, null, array, string, 3 wrong types (user_id, visit_id, a flat context), 2 broken
    assert doc["unparseable"] == 11
    assert doc["invalid_user_id"] == 1
    # Only the visit schema's fields are counted: keys from the data never reach the index mapping.
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", key) for key in doc["null_counts"]), doc["null_counts"]
    assert not any("ird" in key or "a_b" in key for key in doc["null_counts"]), doc["null_counts"]
    assert doc["null_counts"]["context__ad_id"] == 5  # null in all 5 parsed records
    assert doc["invalid_page"] == 1
    assert doc["invalid_event_time"] == 1
    text = observer.metrics()
    assert metric_value(text, "observer_unparseable_records_total", partition="0") == 11
    assert observer.running
    assert not [e for e in observer.log_records() if e.get("level") == "ERROR"]


def test_windows_written_but_not_committed_are_not_observed_again(
    kafka: KafkaBroker, observers: ObserverFactory
) -> None:
    """A replica that died between a write and its commit: the next one starts after the stored windows."""
    observers.topics(partitions=1)
    observers.produce_visits(observers.topic, {0: range(60)})
    settings = {"OBSERVER_WINDOW_RECORDS": "25", "OBSERVER_WINDOW_SECONDS": "2", **NO_PROFILE}
    first = observers.start("first", **settings)
    wait_until(lambda: covered(observers) == 60, 60, what="all records observed")
    first.stop()
    # Roll the group back to the middle of the stored windows, as if the last commits were lost.
    consumer = kafka.consumer(observers.group)
    consumer.commit(offsets=[TopicPartition(observers.topic, 0, 25)], asynchronous=False)
    consumer.close()
    observers.produce_visits(observers.topic, {0: range(60, 70)})
    second = observers.start("second", **settings)
    (moved,) = second.wait_for_event("assignment_moved_past_written_windows", timeout=60)
    assert moved["starts"] == {"0": 60}
    wait_until(lambda: covered(observers) == 70, 60, what="the new records observed")
    assert_exact_cover(coverage(observers.docs("window"))[0], 70)
    second.wait_for_event("window_written", timeout=20)  # its line follows the searchable bulk
    assert written_ranges(second) == [(0, 60, 69)]
