"""Drift observed end to end (generator process → observer process → window documents in the real
Elasticsearch): a `page` shift made on purpose from record N on is flagged within 2 windows while the
windows before it stay below the threshold, and a stable run of more than 50 scored windows has no score
above it (the false-positive count). The threshold is the chart's default alert threshold as rendered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from observer.conftest import (
    ObserverFactory,
    assert_exact_cover,
    chart_drift_threshold,
    coverage,
    start_generator,
)

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.services import ServiceProcess, metric_value, service_env
from streamwatch_observer.settings import ObserverSettings

WINDOW = 400
TOTAL = 12 * WINDOW
SHIFT_AT = 8 * WINDOW + WINDOW // 2  # halfway through the ninth window


def test_page_shift_is_flagged_within_two_windows_and_stable_windows_are_not(
    kafka: KafkaBroker, observers: ObserverFactory, output_dir: Path
) -> None:
    threshold = chart_drift_threshold(output_dir / "rules")
    # One partition, fed by the generator directly: no passthrough is needed to observe drift.
    kafka.create_topic(observers.topic, 1)
    observer = observers.start(
        OBSERVER_WINDOW_RECORDS=str(WINDOW),
        OBSERVER_WINDOW_SECONDS="600",  # windows close by count only, so their edges are known
        OBSERVER_PROFILE_ENABLED="false",
    )
    generator = ServiceProcess(
        "streamwatch-generator",
        output_dir / "generator.log",
        service_env(
            **kafka.env(),
            GENERATOR_TOPIC=observers.topic,
            GENERATOR_TOTAL=str(TOTAL),
            GENERATOR_RATE="0",
            GENERATOR_SEED="11",
            GENERATOR_SHIFT_AFTER_RECORDS=str(SHIFT_AT),
            GENERATOR_SHIFT_FIELD="page",
        ),
    )
    try:
        generator.start()
        assert generator.wait(120) == 0
    finally:
        generator.stop()

    wait_until(lambda: len(observers.docs("window")) == TOTAL // WINDOW, 60, what="every window written")
    windows = sorted(observers.docs("window"), key=lambda d: d["start_offset"])
    assert_exact_cover(coverage(windows)[0], TOTAL)
    scores = [(w["start_offset"], w["drift"].get("page")) for w in windows]
    assert windows[0]["drift"] == {} and windows[0]["drift_max"] is None  # nothing to compare with
    shifted = next(i for i, w in enumerate(windows) if w["end_offset"] >= SHIFT_AT)
    before = [w["drift_max"] for w in windows[1:shifted]]
    assert len(before) == 7 and all(0 <= s <= threshold for s in before), scores
    assert max(w["drift"]["page"] for w in windows[shifted : shifted + 2]) > threshold, scores
    # The last window compares shifted records with shifted records: it is stable again.
    assert windows[-1]["drift"]["page"] <= threshold, scores
    text = observer.metrics()
    last = metric_value(
        text, "observer_field_drift", job="passthrough", topic=observers.topic, partition="0", field="page"
    )
    assert last == windows[-1]["drift"]["page"]


STABLE_PARTITIONS = 2
STABLE_WINDOW_SECONDS = 1.0
MIN_SCORED_WINDOWS = 50  # issue 14: a stable run of at least 50 windows raises no drift alert


def test_stable_run_of_50_scored_windows_has_no_drift_above_the_alert_threshold(
    kafka: KafkaBroker, observers: ObserverFactory, output_dir: Path, processes: list[Any]
) -> None:
    threshold = chart_drift_threshold(output_dir / "rules")
    min_records = ObserverSettings.model_fields["drift_min_records"].default
    # Windows close by time, as in production, with half again the records a score needs per partition
    # and window second: room for the generator's random partition choice and unparseable rows, yet near
    # the noisiest windows that get a score (the fewer records, the larger two windows differ by chance).
    rate = STABLE_PARTITIONS * 1.5 * min_records / STABLE_WINDOW_SECONDS
    # The generator feeds the observed topic directly: drift needs no passthrough (as the shift test).
    kafka.create_topic(observers.topic, STABLE_PARTITIONS)
    observers.start(
        OBSERVER_WINDOW_SECONDS=str(STABLE_WINDOW_SECONDS),
        OBSERVER_WINDOW_RECORDS=str(100 * min_records),  # never reached: windows close by time only
        OBSERVER_PROFILE_ENABLED="false",
    )
    generator = start_generator(
        kafka,
        observers.topic,
        output_dir / "generator.log",
        processes,
        GENERATOR_TOTAL="0",  # until stopped: how long a window lasts depends on the observer's loop
        GENERATOR_RATE=str(rate),
        GENERATOR_SEED="23",
    )

    def scored_windows() -> int:
        return sum(w["drift_max"] is not None for w in observers.docs("window"))

    # A partition's first window has no reference; at most one window a second per partition.
    expected = (MIN_SCORED_WINDOWS / STABLE_PARTITIONS + 1) * STABLE_WINDOW_SECONDS
    wait_until(
        lambda: scored_windows() >= MIN_SCORED_WINDOWS, 3 * expected, interval=1, what="scored windows"
    )
    assert generator.stop() == 0
    ends = kafka.end_offsets(observers.topic)

    def all_observed() -> bool:
        ranges = coverage(observers.docs("window"))
        return all(ranges.get(p) and ranges[p][-1][1] == end - 1 for p, end in ends.items())

    wait_until(all_observed, 60, what="window documents up to the end of every partition")
    windows = observers.docs("window")
    ranges = coverage(windows)
    for partition, end in ends.items():
        assert_exact_cover(ranges[partition], end)
    scored = [w for w in windows if w["drift_max"] is not None]
    false_positives = sorted(
        (w["partition"], w["start_offset"], field, score)
        for w in scored
        for field, score in w["drift"].items()
        if score > threshold
    )
    highest = max((w["drift_max"] for w in scored), default=0.0)
    summary = {
        "windows": len(windows),
        "scored_windows": len(scored),
        "threshold": threshold,
        "false_positives": len(false_positives),
        "highest_score": highest,
        "records_per_window": sorted(w["all_events"] for w in windows),
    }
    (output_dir / "drift_summary.json").write_text(json.dumps(summary, indent=1))
    print(f"stable drift run: {summary}")
    assert len(scored) >= MIN_SCORED_WINDOWS, summary
    assert not false_positives, (
        f"{len(false_positives)} false positives above {threshold} in {len(scored)} scored windows"
        f" (highest {highest}): {false_positives}"
    )
    assert highest > 0.0, "every score 0: the windows were not compared"
