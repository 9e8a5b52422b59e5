"""Drift made on purpose, observed end to end: the generator process shifts `page` from record N on,
the observer process scores each window against the previous one, and the window documents in the real
Elasticsearch flag the shift within 2 windows while the windows before it stay below the threshold."""

from __future__ import annotations

from pathlib import Path

from observer.conftest import ObserverFactory, assert_exact_cover, coverage

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.services import ServiceProcess, metric_value, service_env

THRESHOLD = 0.25  # alerts.drift.threshold's default
WINDOW = 400
TOTAL = 12 * WINDOW
SHIFT_AT = 8 * WINDOW + WINDOW // 2  # halfway through the ninth window


def test_page_shift_is_flagged_within_two_windows_and_stable_windows_are_not(
    kafka: KafkaBroker, observers: ObserverFactory, output_dir: Path
) -> None:
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
    assert len(before) == 7 and all(0 <= s <= THRESHOLD for s in before), scores
    assert max(w["drift"]["page"] for w in windows[shifted : shifted + 2]) > THRESHOLD, scores
    # The last window compares shifted records with shifted records: it is stable again.
    assert windows[-1]["drift"]["page"] <= THRESHOLD, scores
    text = observer.metrics()
    last = metric_value(
        text, "observer_field_drift", job="passthrough", topic=observers.topic, partition="0", field="page"
    )
    assert last == windows[-1]["drift"]["page"]
