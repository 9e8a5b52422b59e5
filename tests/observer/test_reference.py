"""The pinned drift reference without processes: merging windows, pinning, the stored form, loads and saves
through a store with Elasticsearch's version rules, and a slow drift that only the reference sees."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
import yaml
from observer.test_writer import FlakySink, _window, _writer
from observer.units import document, unit_settings
from prometheus_client import REGISTRY
from pydantic import ValidationError

from streamwatch_common.errors import SinkError
from streamwatch_dev.process import REPO_ROOT
from streamwatch_observer.drift import _OTHER, TOP_VALUES, DriftTracker, FieldSummary, summarize
from streamwatch_observer.reference import ReferenceTracker, reference_id
from streamwatch_observer.reference_summary import Reference
from streamwatch_observer.sink import ReferenceConflict, StoredVersion

MIN_RECORDS = 200
PAGES = [f"page-{i}.html" for i in range(5)]
_START = datetime(2026, 1, 1, tzinfo=UTC)


def alert_threshold(name: str) -> float:
    """The chart's default alert threshold (values.yaml alerts.<name>.threshold)."""
    values = yaml.safe_load((REPO_ROOT / "charts/streamwatch/values.yaml").read_text())
    return float(values["alerts"][name]["threshold"])


def window(
    rng: random.Random, rows: int = 400, page_share: float = 0.2, missing: float = 0.0, mean: float = 30.0
) -> pa.Table:
    """Leaves of a window: ``page`` with page-0 at ``page_share`` (the rest shared evenly), a number and a
    timestamp; ``missing`` of the pages empty."""
    rest = (1 - page_share) / (len(PAGES) - 1)
    pages = rng.choices(PAGES, weights=[page_share] + [rest] * (len(PAGES) - 1), k=rows)
    pages = ["" if rng.random() < missing else page for page in pages]
    return pa.table(
        {
            "page": pages,
            "duration": [rng.gauss(mean, 5) for _ in range(rows)],
            "event_time": pa.array(
                [_START + timedelta(seconds=i) for i in range(rows)], pa.timestamp("ms", tz="UTC")
            ),
        }
    )


def summaries(leaves: pa.Table) -> dict[str, FieldSummary]:
    return {name: summarize(leaves[name]) for name in leaves.column_names}


class VersionedStore:
    """Documents with Elasticsearch's version rules: a save names the version it read (None: none may
    exist), or it is refused; ``down`` makes every call fail as an unreachable node would."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[dict[str, Any], StoredVersion]] = {}
        self.down = False
        self.puts = 0

    def get_reference(self, doc_id: str) -> tuple[dict[str, Any], StoredVersion] | None:
        if self.down:
            raise SinkError("search server unreachable")
        stored = self.docs.get(doc_id)
        return None if stored is None else (json.loads(json.dumps(stored[0])), stored[1])

    def put_reference(
        self, doc_id: str, document: dict[str, Any], version: StoredVersion | None
    ) -> StoredVersion:
        if self.down:
            raise SinkError("search server unreachable")
        current = self.docs.get(doc_id)
        if (current[1] if current else None) != version:
            raise ReferenceConflict(f"{doc_id}: stored {current and current[1]}, saved on {version}")
        new = (current[1][0] + 1 if current else 0, 1)
        self.docs[doc_id] = (json.loads(json.dumps(document)), new)  # what JSON keeps, and no more
        self.puts += 1
        return new


def tracker(store: VersionedStore, windows: int = 3, name: str = "initial") -> ReferenceTracker:
    return ReferenceTracker(
        store,
        job="passthrough",
        topic="processed-ref",
        name=name,
        windows=windows,
        min_records=MIN_RECORDS,
        replica="r0",
    )


def metric(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def windows_gauge(partition: int) -> float | None:
    return metric(
        "observer_drift_reference_windows", job="passthrough", topic="processed-ref", partition=str(partition)
    )


def failures(operation: str) -> float:
    return metric("observer_drift_reference_failures_total", operation=operation) or 0.0


def test_merging_sums_counts_weights_null_shares_and_keeps_the_first_edges() -> None:
    rng = random.Random(1)
    first, second = window(rng, 400, missing=0.1), window(rng, 600, missing=0.3, mean=40)
    reference = Reference(target=2)
    reference.merge(first, summaries(first), end_offset=399)
    assert not reference.pinned and reference.windows == 1
    reference.merge(second, summaries(second), end_offset=999)
    assert reference.pinned and reference.windows == 2 and reference.merged_until == 999

    page = reference.fields["page"]
    one, two = summarize(first["page"]), summarize(second["page"])
    assert page.rows == 1000
    assert page.null_share == pytest.approx((one.null_share * 400 + two.null_share * 600) / 1000)
    assert one.values is not None and two.values is not None and page.values is not None
    assert dict(page.values) == {p: one.values.get(p, 0) + two.values.get(p, 0) for p in PAGES}
    # Numbers: the first window's edges, the second window counted in them (its mean is higher).
    duration = reference.fields["duration"]
    first_duration = summarize(first["duration"])
    assert duration.edges == first_duration.edges
    assert duration.bin_counts is not None and first_duration.bin_counts is not None
    assert sum(duration.bin_counts) == 1000
    assert duration.bin_counts[-1] > 2 * first_duration.bin_counts[-1]
    # Timestamps: only their null share.
    assert reference.fields["event_time"] == FieldSummary(1000, 0.0)


def test_merged_categories_beyond_the_kept_values_go_to_other() -> None:
    ids = [f"id-{i}" for i in range(TOP_VALUES + 50)]
    first, second = pa.table({"id": ids[: TOP_VALUES - 10]}), pa.table({"id": ids[TOP_VALUES - 10 :]})
    reference = Reference(target=2)
    reference.merge(first, summaries(first), 0)
    reference.merge(second, summaries(second), 1)
    values = reference.fields["id"].values
    assert values is not None
    assert len(values) == TOP_VALUES + 1 and sum(values.values()) == len(ids)
    assert values[_OTHER] == len(ids) - TOP_VALUES


def test_the_stored_form_is_json_and_reads_back_the_same() -> None:
    rng = random.Random(2)
    reference = Reference(target=2)
    for end in (399, 799):
        leaves = window(rng, missing=0.05)
        reference.merge(leaves, summaries(leaves), end)
    # A cut category list ("other") and an infinite edge, which JSON cannot carry as a number.
    reference.fields["id"] = FieldSummary(10, 0.0, values={"a.b": 3, "c": 2, _OTHER: 5})
    reference.fields["size"] = FieldSummary(10, 0.1, edges=(1.0, float("inf")), bin_counts=(3, 4, 2))
    stored = json.loads(json.dumps(reference.to_document(), allow_nan=False))
    again = Reference.from_document(stored, target=2)
    assert again == reference
    # Stored unpinned and the setting lowered to what it holds: pinned when read.
    reference.pinned = False
    assert Reference.from_document(reference.to_document(), target=2).pinned
    assert not Reference.from_document(reference.to_document(), target=3).pinned


def test_first_windows_build_the_reference_then_it_is_pinned_and_scores_every_later_window() -> None:
    rng = random.Random(3)
    store = VersionedStore()
    references = tracker(store, windows=3)
    doc_id = reference_id("passthrough", "processed-ref", 0, "initial")
    assert references.observe(0, 0, 99, window(rng, 100)) == {}  # below the minimum: not merged
    assert store.puts == 0
    references.load([0])  # as after an assignment: nothing stored yet
    assert windows_gauge(0) == 0
    for n, start in enumerate((100, 500, 900), start=1):
        assert references.observe(0, start, start + 399, window(rng)) == {}  # built: no score yet
        assert windows_gauge(0) == n
        references.settle()  # saved on its own thread
        assert store.docs[doc_id][0]["windows"] == n  # saved after each merged window
    assert store.docs[doc_id][0]["pinned"] and store.docs[doc_id][0]["merged_until"] == 1299
    pinned = references.reference(0)
    assert pinned is not None
    fields = dict(pinned.fields)
    puts = store.puts
    scores = references.observe(0, 1300, 1699, window(rng))
    assert set(scores) == {"page", "duration", "event_time"}
    assert max(scores.values()) < 0.25, scores
    assert pinned.fields == fields and pinned.windows == 3  # pinned: no longer changes
    references.settle()
    assert store.puts == puts  # and is not saved again
    references.forget([0])
    assert windows_gauge(0) is None and references.partitions == []


def test_a_new_owner_continues_the_stored_reference_and_a_replayed_window_is_not_merged_twice() -> None:
    rng = random.Random(4)
    store = VersionedStore()
    old = tracker(store, windows=3)
    old.observe(0, 0, 399, window(rng))
    old.observe(0, 400, 799, window(rng))
    old.forget([0])  # revoked: its save in flight lands first
    new = tracker(store, windows=3)
    new.load([0])
    assert windows_gauge(0) == 2  # what was stored, at once
    # Re-read from an older commit: the window ending at 799 is merged already.
    assert new.observe(0, 400, 799, window(rng)) == {}
    reference = new.reference(0)
    assert reference is not None and reference.windows == 2
    new.observe(0, 800, 1199, window(rng))
    assert reference.pinned and reference.windows == 3
    assert new.observe(0, 1200, 1599, window(rng))  # scored


def test_a_stale_owner_cannot_overwrite_a_newer_reference() -> None:
    rng = random.Random(5)
    store = VersionedStore()
    stale = tracker(store, windows=3)
    stale.observe(0, 0, 399, window(rng))
    stale.settle()
    newer = tracker(store, windows=3)
    newer.load([0])
    newer.observe(0, 400, 799, window(rng))  # stored as version 1
    newer.settle()
    conflicts = failures("conflict")
    stale.observe(0, 400, 799, window(rng))  # merged on version 0: refused
    stale.settle()  # the refusal is taken: the stored reference is loaded
    assert failures("conflict") == conflicts + 1
    doc_id = reference_id("passthrough", "processed-ref", 0, "initial")
    assert store.docs[doc_id][1] == (1, 1) and store.docs[doc_id][0]["replica"] == "r0"
    reference = stale.reference(0)
    assert reference is not None and reference.windows == 2  # it took the stored one


def test_a_failed_load_or_save_is_counted_and_retried_at_the_next_window() -> None:
    rng = random.Random(6)
    store = VersionedStore()
    references = tracker(store, windows=2)
    store.down = True
    loads, saves = failures("load"), failures("save")
    references.load([0])
    assert references.observe(0, 0, 399, window(rng)) == {}
    assert failures("load") == loads + 2 and references.partitions == []
    store.down = False
    references.observe(0, 400, 799, window(rng))  # loaded now, merged, saved
    references.settle()
    store.down = True
    references.observe(0, 800, 1199, window(rng))  # merged (pinned) but not saved
    references.settle()
    assert failures("save") == saves + 1
    doc_id = reference_id("passthrough", "processed-ref", 0, "initial")
    assert not store.docs[doc_id][0]["pinned"]
    store.down = False
    assert references.observe(0, 1200, 1599, window(rng))  # scored, and the pinned reference saved
    references.settle()
    assert store.docs[doc_id][0]["pinned"] and store.docs[doc_id][0]["windows"] == 2


class SlowStore(VersionedStore):
    """Saves wait until released, as they would on a slow Elasticsearch."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def put_reference(
        self, doc_id: str, document: dict[str, Any], version: StoredVersion | None
    ) -> StoredVersion:
        self.entered.set()
        self.release.wait(30)
        return super().put_reference(doc_id, document, version)


def test_a_save_runs_beside_the_measurement_and_the_next_save_names_its_version() -> None:
    rng = random.Random(8)
    store = SlowStore()
    references = tracker(store, windows=3)
    try:
        references.load([0])
        assert references.observe(0, 0, 399, window(rng)) == {}  # merged; the save waits for the store
        assert store.entered.wait(10)
        assert store.puts == 0  # the window's measurement did not wait for it
        store.release.set()
        references.observe(0, 400, 799, window(rng))  # the first save's version, then the second save
        references.settle()
        doc_id = reference_id("passthrough", "processed-ref", 0, "initial")
        assert store.puts == 2 and store.docs[doc_id][0]["windows"] == 2
    finally:
        store.release.set()
        references.close()


def test_a_new_name_pins_a_new_reference_and_keeps_the_old_one() -> None:
    rng = random.Random(7)
    store = VersionedStore()
    first = tracker(store, windows=1)
    first.observe(0, 0, 399, window(rng))
    second = tracker(store, windows=1, name="after-release-2.3")
    assert second.observe(0, 400, 799, window(rng, page_share=0.6)) == {}  # builds its own
    first.settle()
    second.settle()
    assert set(store.docs) == {
        reference_id("passthrough", "processed-ref", 0, "initial"),
        reference_id("passthrough", "processed-ref", 0, "after-release-2.3"),
    }
    assert max(second.observe(0, 800, 1199, window(rng, page_share=0.6)).values()) < 0.25


def test_window_documents_and_gauges_carry_the_reference_scores_and_drop_them_with_the_partition() -> None:
    def gauge(partition: int, field: str) -> float | None:
        labels = {
            "job": "passthrough",
            "topic": "processed_visits",
            "partition": str(partition),
            "field": field,
        }
        return metric("observer_field_drift_reference", **labels)

    sink = FlakySink()
    writer, _offsets = _writer(sink)
    windows = [_window(0, 0, 9), _window(1, 0, 9)]
    for window in windows:
        window.quality.null_counts = {"page": 0, "context.user.ip": 0}
    windows[0].drift_reference = {"page": 0.31, "context.user.ip": 0.02, "unreported": 0.9}
    _id, doc = document(windows[0])
    assert doc["drift_reference"] == {"page": 0.31, "context__user__ip": 0.02}  # reported names and cap
    assert doc["drift_reference_max"] == 0.31
    assert document(windows[1])[1]["drift_reference_max"] is None
    windows[1].drift_reference = {"page": 0.05}
    writer.add_windows(windows)
    assert writer.flush()
    assert (gauge(0, "page"), gauge(0, "context__user__ip"), gauge(1, "page")) == (0.31, 0.02, 0.05)
    writer.reporter.forget([0])  # revoked: its next owner exports them
    assert gauge(0, "page") is None and gauge(0, "context__user__ip") is None
    assert gauge(1, "page") == 0.05
    unscored = _window(1, 10, 19)  # a window without reference scores clears the partition's series
    unscored.quality.null_counts = {"page": 0}
    writer.add_windows([unscored])
    assert writer.flush()
    assert gauge(1, "page") is None


@pytest.mark.parametrize("name", ["", "a b", "x/y", "ü", "a" * 65])
def test_reference_names_are_safe_for_a_document_id(name: str) -> None:
    with pytest.raises(ValidationError, match="drift_reference_name"):
        unit_settings(drift_reference_name=name)
    assert (
        unit_settings(drift_reference_name="v2.1_after-release").drift_reference_name == "v2.1_after-release"
    )
    assert unit_settings().drift_reference_windows == 5 and unit_settings().drift_reference_name == "initial"


def test_slow_drift_stays_below_the_threshold_window_to_window_but_not_against_the_reference() -> None:
    """Page 0's share grows by 2.5 points a window, from a fifth to seven tenths over 20 windows: no
    window differs much from the one before, but the last ones differ from the first ones."""
    drift_threshold, reference_threshold = alert_threshold("drift"), alert_threshold("driftReference")
    rng = random.Random(8)
    previous = DriftTracker(MIN_RECORDS)
    references = tracker(VersionedStore(), windows=5)
    window_to_window: list[float] = []
    against_reference: list[float] = []
    for n in range(25):
        share = 0.2 + 0.025 * max(0, n - 4)
        leaves = window(rng, 400, page_share=share)
        made = summaries(leaves)
        window_to_window.append(previous.observe(0, leaves, made).get("page", 0.0))
        scores = references.observe(0, 400 * n, 400 * n + 399, leaves, made)
        if n >= 5:
            against_reference.append(scores["page"])
    assert max(window_to_window) < drift_threshold, window_to_window
    assert against_reference[0] < reference_threshold, against_reference
    assert against_reference[-1] > reference_threshold, against_reference
