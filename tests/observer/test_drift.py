"""Drift scores between windows, on windows made by the real generator record factory (no broker)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from streamwatch_common.visit_record import DEFAULT_REQUIRED_FIELDS, classify_values, leaf_table
from streamwatch_generator.records import VisitFactory, encode
from streamwatch_generator.settings import REQUIRED_FIELDS
from streamwatch_observer.drift import DriftTracker, js_distance, score, summarize

# The chart's default alert threshold (values.yaml observer.drift.threshold) and the observer's default
# minimum window size; the stable-run test below is what chose them.
THRESHOLD = 0.25
MIN_RECORDS = 200
_START = datetime(2026, 1, 1, tzinfo=UTC)


class Stream:
    """Seeded generator records with the generator's default 5 % of rows missing required fields."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.factory = VisitFactory(self.rng)
        self.made = 0

    def window(self, records: int, shift: str | None = None, shift_from: int = 0) -> pa.Table:
        values = []
        for n in range(records):
            moment = _START + timedelta(milliseconds=100 * self.made)
            record = self.factory.visit(self.factory.visit_id(), moment, shift if n >= shift_from else None)
            if self.rng.random() < 0.05:
                record = self.factory.with_missing_fields(record, list(REQUIRED_FIELDS))[0]
            values.append(encode(record))
            self.made += 1
        return leaf_table(classify_values(values, DEFAULT_REQUIRED_FIELDS).visits)


def test_identical_windows_score_zero_and_disjoint_ones_one() -> None:
    assert js_distance([5, 3, 2], [10, 6, 4]) == 0.0
    assert js_distance([1, 0], [0, 1]) == 1.0
    leaves = Stream(1).window(MIN_RECORDS)
    tracker = DriftTracker(MIN_RECORDS)
    assert tracker.observe(0, leaves) == {}  # the first window has nothing to compare with
    again = tracker.observe(0, leaves)
    assert set(again) == set(leaves.column_names)
    assert max(again.values()) < 0.01, again


def test_shifted_page_distribution_scores_above_the_threshold_in_the_next_window() -> None:
    stream = Stream(2)
    tracker = DriftTracker(MIN_RECORDS)
    tracker.observe(0, stream.window(2000))
    steady = tracker.observe(0, stream.window(2000))
    # The shift starts halfway through a window: flagged in that window or the next one.
    half = tracker.observe(0, stream.window(2000, "page", shift_from=1000))
    full = tracker.observe(0, stream.window(2000, "page"))
    assert steady["page"] < THRESHOLD, steady
    assert max(half["page"], full["page"]) > THRESHOLD, (half["page"], full["page"])
    others = {name: s for name, s in full.items() if name != "page" and s > THRESHOLD}
    assert not others, others  # only the shifted field drifts


def test_shifted_browser_is_flagged_on_the_browser_field() -> None:
    stream = Stream(3)
    tracker = DriftTracker(MIN_RECORDS)
    tracker.observe(0, stream.window(MIN_RECORDS))
    shifted = tracker.observe(0, stream.window(MIN_RECORDS, "browser"))
    assert shifted["context.technical.browser"] > THRESHOLD, shifted
    assert shifted["page"] < THRESHOLD, shifted


def test_stable_streams_of_60_windows_raise_no_drift_above_the_threshold() -> None:
    # The smallest windows that get a score: the noisiest case of a stable stream; three seeds.
    false_positives = []
    highest = 0.0
    compared = 0
    for seed in (4, 5, 6):
        stream = Stream(seed)
        tracker = DriftTracker(MIN_RECORDS)
        for index in range(60):
            scores = tracker.observe(0, stream.window(MIN_RECORDS))
            compared += bool(scores)
            highest = max([highest, *scores.values()])
            false_positives += [(seed, index, name, s) for name, s in scores.items() if s > THRESHOLD]
    assert compared == 3 * 59
    assert not false_positives, (
        f"{len(false_positives)} false positives in {compared} compared windows: {false_positives}"
    )
    assert 0.0 < highest < THRESHOLD


def test_small_windows_get_no_score_and_are_no_reference() -> None:
    stream = Stream(5)
    tracker = DriftTracker(MIN_RECORDS)
    tracker.observe(0, stream.window(MIN_RECORDS))
    assert tracker.observe(0, stream.window(MIN_RECORDS - 1, "page")) == {}
    assert tracker.observe(0, stream.window(MIN_RECORDS))["page"] < THRESHOLD  # vs the first window


def test_partitions_are_compared_only_with_themselves_and_forgotten_on_revoke() -> None:
    stream = Stream(6)
    tracker = DriftTracker(MIN_RECORDS)
    tracker.observe(0, stream.window(MIN_RECORDS))
    assert tracker.observe(1, stream.window(MIN_RECORDS, "page")) == {}
    assert tracker.partitions == [0, 1]
    tracker.forget([0])
    assert tracker.partitions == [1]
    assert tracker.observe(0, stream.window(MIN_RECORDS)) == {}


def test_numbers_are_binned_by_the_previous_windows_deciles_and_nulls_count() -> None:
    rng = random.Random(7)
    before_column = pa.array([rng.gauss(0, 1) for _ in range(2000)])
    same_column = pa.array([rng.gauss(0, 1) for _ in range(2000)])
    moved_column = pa.array([rng.gauss(1.5, 1) for _ in range(2000)])
    before = summarize(before_column)
    assert before.bin_counts is not None and sum(before.bin_counts) == 2000
    assert score(before, summarize(same_column), same_column) < 0.1
    assert score(before, summarize(moved_column), moved_column) > 0.4
    half_null = pa.array([None if n % 2 else v for n, v in enumerate(same_column.to_pylist())])
    assert abs(score(before, summarize(half_null), half_null) - 0.5) < 0.01  # null share 0 → 0.5


def test_identifiers_never_drift_and_a_new_type_scores_its_null_change() -> None:
    ids_a = pa.array([f"a{n}" for n in range(1500)])
    ids_b = pa.array([f"b{n}" for n in range(1500)])
    assert score(summarize(ids_a), summarize(ids_b), ids_b) < 0.01
    numbers = pa.array([float(n) for n in range(1500)])
    assert score(summarize(ids_a), summarize(numbers), numbers) == 0.0
