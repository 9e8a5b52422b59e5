"""End to end: generator → visits → real Spark passthrough → processed_visits → observer → Elasticsearch
and Prometheus. Quality counts equal the generator's exact counts; lag equals an independent reading of
the passthrough's checkpoint and the topic; the lag alert fires for the partition made to lag."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from observer.conftest import (
    ObserverFactory,
    assert_exact_cover,
    coverage,
    start_generator,
    start_passthrough,
    visit,
)

from streamwatch_dev.chart import render_rule_files
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Prometheus
from streamwatch_dev.services import metric_value

pytestmark = pytest.mark.spark

TOTAL = 400
EXTRA = 25  # produced to partition 1 after the passthrough stopped: that partition lags by this much


def committed_by_checkpoint(checkpoint: Path, topic: str) -> dict[int, int]:
    """Independent reading: the last line of ``offsets/N`` for the newest ``commits/N``."""
    newest = max(int(p.name) for p in (checkpoint / "commits").iterdir() if p.name.isdigit())
    offsets = json.loads((checkpoint / "offsets" / str(newest)).read_text().splitlines()[-1])
    return {int(p): int(o) for p, o in offsets[topic].items()}


def test_generator_passthrough_observer(
    kafka: KafkaBroker, observers: ObserverFactory, output_dir: Path, processes: list[Any]
) -> None:
    observers.topics(partitions=2)
    generator = start_generator(
        kafka,
        observers.source,
        output_dir / "generator.log",
        processes,
        GENERATOR_TOTAL=str(TOTAL),
        GENERATOR_RATE="0",
        GENERATOR_SEED="7",
        GENERATOR_MISSING_FIELDS_PERCENT="10",
        GENERATOR_DUPLICATE_PERCENT="5",
        GENERATOR_UNPARSEABLE_PERCENT="3",
    )
    assert generator.wait(120) == 0
    (summary,) = generator.events("generator_summary")
    assert summary["delivered"] == TOTAL

    passthrough = start_passthrough(kafka, observers, output_dir / "passthrough.log", processes)
    source_ends = kafka.end_offsets(observers.source)
    wait_until(
        lambda: (
            (observers.checkpoint / "commits").is_dir()
            and committed_by_checkpoint(observers.checkpoint, observers.source) == source_ends
        ),
        180,
        what="the passthrough committing every generated record",
    )
    passthrough.signal(signal.SIGTERM)
    assert passthrough.wait(60) == 0
    kafka.produce(observers.source, [(None, visit(5000 + i)) for i in range(EXTRA)], partition=1)

    observer = observers.start(
        OBSERVER_WINDOW_RECORDS="10000", OBSERVER_WINDOW_SECONDS="3", OBSERVER_PROFILE_ENABLED="false"
    )
    rules = [
        p
        for p in render_rule_files(output_dir / "rules", {"alerts.lag.for": "5s"})
        if p.name == "observer.rules.yaml"
    ]
    prom = Prometheus.start(output_dir / "prometheus", rules, targets=[f"127.0.0.1:{observer.ops_port}"])
    processes.append(prom)

    copied = kafka.end_offsets(observers.topic)
    assert copied == source_ends  # the passthrough copies partition for partition
    wait_until(
        lambda: sum(e - s + 1 for r in coverage(observers.docs("window")).values() for s, e in r) == TOTAL,
        60,
        what="windows covering every copied record",
    )
    windows = observers.docs("window")
    cover = coverage(windows)
    for partition, end in copied.items():
        assert_exact_cover(cover[partition], end)
    by_kind = summary["by_kind"]
    totals = {
        k: sum(d[k] for d in windows) for k in ("all_events", "unparseable", "duplicates", "invalid_records")
    }
    assert totals == {
        "all_events": TOTAL,
        "unparseable": by_kind["unparseable"],
        "duplicates": by_kind["duplicate"],
        "invalid_records": by_kind["missing_fields"],
    }
    for doc in windows:  # per partition too (one window per partition here)
        kinds = summary["by_partition_and_kind"][str(doc["partition"])]
        assert doc["unparseable"] == kinds["unparseable"]
        assert doc["duplicates"] == kinds["duplicate"]
        assert doc["invalid_records"] == kinds["missing_fields"]

    # Lag, independently: the topic's newest offsets minus the checkpoint's committed offsets.
    committed = committed_by_checkpoint(observers.checkpoint, observers.source)
    ends = kafka.end_offsets(observers.source)
    expected = {p: ends[p] - committed[p] for p in ends}
    assert expected == {0: 0, 1: EXTRA}

    def lag_docs() -> dict[int, dict[str, Any]]:
        return {d["partition"]: d for d in observers.docs("lag") if d["status"] == "ok"}

    wait_until(lambda: set(lag_docs()) == {0, 1}, 30, what="lag documents for both partitions")
    for partition, doc in lag_docs().items():
        assert doc["lag_offsets"] == expected[partition]
        assert doc["committed_offset"] == committed[partition]
    assert lag_docs()[1]["lag_seconds"] > 0
    text = observer.metrics()
    assert metric_value(text, "observer_lag_offsets", topic=observers.source, partition="1") == EXTRA

    wait_until(lambda: prom.alert_state("passthrough lag") == "firing", 60, interval=0.5, what="lag alert")
    assert [a["labels"]["partition"] for a in prom.alerts("passthrough lag")] == ["1"]
