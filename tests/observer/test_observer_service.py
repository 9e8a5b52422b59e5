"""The observer as a real process against the real broker and search server.

Records of known composition are produced straight to the observed topic (standing in for the
passthrough's copy) and a checkpoint in Spark's layout is written by the test; the passthrough itself
runs in the end-to-end test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from observer.conftest import (
    ObserverFactory,
    assert_exact_cover,
    coverage,
    visit,
    write_checkpoint,
)

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.services import metric_value


def test_quality_lag_and_profile_of_known_records(kafka: KafkaBroker, observers: ObserverFactory) -> None:
    observers.topics(partitions=2)
    # Source: p0 has 30 records, p1 has 50. The passthrough "copied" all of p0 and 20 of p1.
    observers.produce_visits(observers.source, {0: range(30), 1: range(100, 150)})
    p0 = [visit(i) for i in range(30)]
    p0[2] = visit(2, user_id=None)
    p0[3] = visit(3, page="")
    p0[4] = visit(4, event_time=None, page=None)
    p0[5] = visit(1)  # duplicate within the first window
    p0[6] = b"{truncated"
    p0[25] = visit(25, user_id="")
    p1 = [visit(100 + i) for i in range(20)]
    p1[7] = b"not json at all"
    p1[8] = json.dumps({"visit_id": "v-108", "user_id": 5, "page": "p"}).encode()
    kafka.produce(observers.topic, [(None, v) for v in p0], partition=0)
    kafka.produce(observers.topic, [(None, v) for v in p1], partition=1)

    observer = observers.start(OBSERVER_WINDOW_RECORDS="20", OBSERVER_WINDOW_SECONDS="3")
    # No checkpoint yet: lag is "not started", reported as such.
    wait_until(lambda: len(observers.docs("lag")) >= 2, 30, what="not_started lag documents")
    assert {d["status"] for d in observers.docs("lag")} == {"not_started"}
    assert metric_value(observer.metrics(), "observer_lag_status", partition="0", status="not_started") == 1

    write_checkpoint(observers.checkpoint, 0, {0: 30, 1: 20}, observers.source)

    def windows_complete() -> bool:
        cover = coverage(observers.docs("window"))
        return sum(e - s + 1 for ranges in cover.values() for s, e in ranges) == 50

    wait_until(windows_complete, 40, what="windows covering all 50 records")
    windows = observers.docs("window")
    cover = coverage(windows)
    assert_exact_cover(cover[0], 30)
    assert_exact_cover(cover[1], 20)
    assert cover[0][0] == (0, 19)  # closed by count; the rest closed by time
    by_partition = {p: [d for d in windows if d["partition"] == p] for p in (0, 1)}
    total = {
        p: {
            k: sum(d[k] for d in docs)
            for k in (
                "all_events",
                "unparseable",
                "duplicates",
                "invalid_event_time",
                "invalid_user_id",
                "invalid_page",
            )
        }
        for p, docs in by_partition.items()
    }
    assert total[0] == {
        "all_events": 30,
        "unparseable": 1,
        "duplicates": 1,
        "invalid_event_time": 1,
        "invalid_user_id": 2,
        "invalid_page": 2,
    }
    assert total[1] == {
        "all_events": 20,
        "unparseable": 2,
        "duplicates": 0,
        "invalid_event_time": 0,
        "invalid_user_id": 0,
        "invalid_page": 0,
    }
    first = next(d for d in by_partition[0] if d["start_offset"] == 0)
    assert first["_id"] == f"passthrough-{observers.topic}-0-0-19"
    assert first["null_counts"]["context__user__ip"] == 0
    assert first["null_counts"]["context__ad_id"] == 19  # null in every parsed record of the window

    # Lag: independently, source end offsets minus the checkpoint's committed offsets.
    ends = kafka.end_offsets(observers.source)
    expected = {0: ends[0] - 30, 1: ends[1] - 20}
    assert expected == {0: 0, 1: 30}

    def lag_ok() -> list[dict[str, Any]]:
        return [d for d in observers.docs("lag") if d["status"] == "ok"]

    wait_until(lambda: {d["partition"] for d in lag_ok()} == {0, 1}, 20, what="ok lag documents")
    for doc in lag_ok():
        assert doc["lag_offsets"] == expected[doc["partition"]]
        assert doc["committed_offset"] == {0: 30, 1: 20}[doc["partition"]]
        assert doc["end_offset"] == ends[doc["partition"]]
        assert doc["_id"].startswith(f"passthrough-lag-{doc['partition']}-")
    lagging = [d for d in lag_ok() if d["partition"] == 1]
    assert all(d["lag_seconds"] is not None and d["lag_seconds"] >= 0 for d in lagging)
    text = observer.metrics()
    assert metric_value(text, "observer_lag_offsets", topic=observers.source, partition="1") == 30
    assert metric_value(text, "observer_lag_offsets", topic=observers.source, partition="0") == 0
    assert metric_value(text, "observer_records_total", partition="0") == 30
    assert metric_value(text, "observer_unparseable_records_total", partition="1") == 2
    assert metric_value(text, "observer_invalid_values_total", field="user_id", required="true") == 2
    # Window documents carry the seed's lag_per_partition map: the lag known when they were written.
    for doc in windows:
        assert all(lag == expected[int(p)] for p, lag in doc["lag_per_partition"].items()), doc

    # Profiles: written to the configured directory, named by job, partitions and window.
    def profiles() -> list[Path]:
        return sorted(observers.profiles.glob("passthrough_partitions-*.html"))

    wait_until(profiles, 90, what="a profile report file")
    html = profiles()[0].read_text()
    for column in ("visit_id", "user_id", "page", "event_time", "context.user.ip"):
        assert column in html
    written = observer.wait_for_event("profile_written", timeout=60)
    assert written[0]["location"] == str(profiles()[0]) or len(profiles()) > 1
    assert observer.running


def test_partition_unknown_to_the_checkpoint_is_reported_as_new(
    kafka: KafkaBroker, observers: ObserverFactory
) -> None:
    observers.topics(partitions=2)
    observers.produce_visits(observers.source, {0: range(10), 1: range(100, 107)})
    write_checkpoint(observers.checkpoint, 3, {0: 10}, observers.source)  # written before p1 existed
    observer = observers.start(OBSERVER_PROFILE_ENABLED="false")

    def statuses() -> dict[int, dict[str, Any]]:
        return {d["partition"]: d for d in observers.docs("lag")}

    wait_until(lambda: set(statuses()) == {0, 1}, 30, what="lag documents of both partitions")
    docs = statuses()
    assert (docs[0]["status"], docs[0]["lag_offsets"], docs[0]["batch_id"]) == ("ok", 0, 3)
    assert (docs[1]["status"], docs[1]["lag_offsets"], docs[1]["committed_offset"]) == ("new_partition", 7, 0)
    text = observer.metrics()
    assert metric_value(text, "observer_lag_status", partition="1", status="new_partition") == 1
    assert metric_value(text, "observer_lag_offsets", partition="1") == 7
