"""The broker restarted under a running observer: it reconnects and continues without a restart of its own.

The test broker is Apache Kafka with its log directory on disk, so topics, records and the group's
committed offsets survive the restart. What this proves: the observer survives the outage without crashing
or crash-looping, rejoins the group and resumes from the offsets it committed before the restart — the
window documents (deterministic ids: a replayed window overwrites its own document) cover every record
produced before and after the restart exactly once — within a measured time."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from observer.conftest import ObserverFactory, assert_exact_cover, coverage, write_checkpoint
from observer_scale.conftest import FlowingProducer

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.search import SearchServer

SETTINGS = {
    "OBSERVER_WINDOW_RECORDS": "20",
    "OBSERVER_WINDOW_SECONDS": "2",
    "OBSERVER_PROFILE_ENABLED": "false",
}


def _epoch(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()


def test_broker_restart_observer_reconnects_and_continues(search: SearchServer, output_dir: Path) -> None:
    broker = KafkaBroker.start(output_dir)  # its own broker: other tests keep theirs
    observers = ObserverFactory(broker, search, output_dir)
    try:
        observers.topics(partitions=2)
        write_checkpoint(observers.checkpoint, 0, {0: 0, 1: 0}, observers.source)
        before = FlowingProducer(broker, observers.topic, 2, 40.0).start()
        observer = observers.start("survivor", **SETTINGS)
        observer.wait_for_event("window_written", count=4, timeout=60)
        before.pause()
        produced_before = before.stop()
        pid = observer.pid

        restart_began = time.time()
        broker.restart()
        broker_ready = time.time()
        assert broker.end_offsets(observers.topic) == produced_before  # durable: the records are still there
        after = FlowingProducer(broker, observers.topic, 2, 40.0).start()

        def first_new_windows() -> dict[int, float] | None:
            # the first window of each partition that holds a record produced after the restart
            firsts: dict[int, float] = {}
            for e in observer.events("window_written"):
                p = int(str(e["partition"]))
                if _epoch(e) > restart_began and int(str(e["end_offset"])) >= produced_before[p]:
                    firsts.setdefault(p, _epoch(e))
            return firsts if len(firsts) == 2 else None

        found = wait_until(first_new_windows, 90, interval=0.3, what="windows of records produced after")
        assert isinstance(found, dict)
        recovered = max(found.values())
        time.sleep(3)
        after.pause()
        produced_after = after.stop()
        total = {p: produced_before[p] + produced_after[p] for p in produced_before}

        def covered() -> bool:
            cover = coverage(observers.docs("window"))
            return all(sum(e - s + 1 for s, e in cover.get(p, [])) >= total[p] for p in total)

        wait_until(covered, 60, what=f"every record observed: {total}")
        cover = coverage(observers.docs("window"))
        for p, end in total.items():
            assert_exact_cover(cover[p], end)
        # Resumed from its committed offsets, not from the beginning of the topic.
        from_zero = [
            e
            for e in observer.events("window_written")
            if _epoch(e) > broker_ready and e["start_offset"] == 0
        ]
        assert not from_zero
        # No crash, no restart of the observer process; lag keeps being measured after the outage.
        assert observer.running and observer.pid == pid
        assert not observer.events("service_stopped")
        assert any(_epoch(e) > broker_ready for e in observer.events("lag_measured"))
        report = {
            "broker_down_seconds": round(broker_ready - restart_began, 2),
            "recovery_seconds_from_restart": round(recovered - restart_began, 2),
            "recovery_seconds_from_broker_ready": round(recovered - broker_ready, 2),
            "produced_before": produced_before,
            "produced_after": produced_after,
        }
        (output_dir / "measurements.json").write_text(json.dumps(report, indent=2))
        print(f"broker restart measurements: {report}")
        assert recovered - broker_ready < 60
    finally:
        observers.stop()
        broker.stop()
