"""Observation documents: deterministic ids (a replay overwrites) and the fields the index maps."""

from __future__ import annotations

from datetime import UTC, datetime

from observer.units import ORIGIN, document

from streamwatch_observer.documents import iso, lag_document
from streamwatch_observer.lag import PartitionLag
from streamwatch_observer.quality import WindowQuality
from streamwatch_observer.window import ClosedWindow


def _window() -> ClosedWindow:
    quality = WindowQuality(10, 1, 2, {"user_id": 3, "context.user.ip": 4}, invalid_records=5)
    start = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    end = datetime(2026, 11, 22, 10, 1, 0, 123000, tzinfo=UTC)
    return ClosedWindow(1, 100, 109, start, end, quality, 0.012345)


def test_window_document_id_is_its_offset_range_and_counts_are_its_quality() -> None:
    doc_id, doc = document(_window(), {1: 7, 0: 3})
    assert doc_id == "passthrough-processed_visits-1-100-109"
    assert document(_window())[0] == doc_id  # a replay overwrites
    assert doc["@timestamp"] == doc["window_end"] == "2026-11-22T10:01:00.123Z"
    assert (doc["all_events"], doc["unparseable"], doc["duplicates"], doc["invalid_records"]) == (10, 1, 2, 5)
    assert doc["invalid_user_id"] == 3
    # Not in the window: null in every parsed record.
    assert doc["invalid_page"] == doc["invalid_event_time"] == 9
    assert doc["null_counts"]["context__user__ip"] == 4
    assert list(doc["lag_per_partition"].items()) == [("0", 3), ("1", 7)]
    assert doc["replica"] == "r0" and doc["measure_seconds"] == 0.0123


def test_window_document_carries_the_drift_of_its_reported_fields_and_their_maximum() -> None:
    window = _window()
    window.drift = {"user_id": 0.05, "context.user.ip": 0.31, "context.user.login": 0.9}
    # Two reported fields: the required ones always come first, so context.user.ip is left out too.
    doc = document(window, max_fields=3)[1]
    assert doc["drift"] == {"user_id": 0.05}
    assert doc["drift_max"] == 0.05
    doc = document(window)[1]
    assert doc["drift"] == {"user_id": 0.05, "context__user__ip": 0.31}  # login: no null count, no field
    assert doc["drift_max"] == 0.31
    assert document(_window())[1]["drift_max"] is None


def test_lag_document_is_stamped_with_its_bucket_and_named_by_it() -> None:
    lag = PartitionLag(2, "ok", 40, 52, 12, 1.23456, 7, commit_time=1.0, evaluation="stall")
    doc_id, doc = lag_document(ORIGIN, lag, bucket=117_586_667, interval_seconds=15)
    assert doc_id == "passthrough-lag-2-117586667"
    assert doc["@timestamp"] == iso(datetime.fromtimestamp(117_586_667 * 15, tz=UTC))
    assert (doc["topic"], doc["lag_offsets"], doc["status"]) == ("visits", 12, "ok")
    assert doc["evaluation"] == "stall", "the Burrow judgement is a field next to the availability status"
    assert doc["lag_seconds"] == 1.235
