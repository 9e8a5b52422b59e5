"""Pending observations: one bulk write, then the commit; back-off, pause and resume while the sink fails."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition
from observer.units import ORIGIN, REQUIRED
from prometheus_client import REGISTRY

from streamwatch_common.errors import SinkError
from streamwatch_observer.documents import Document, WindowDocuments
from streamwatch_observer.ownership import Ownership
from streamwatch_observer.quality import WindowQuality
from streamwatch_observer.window import ClosedWindow
from streamwatch_observer.window_metrics import WindowMetrics
from streamwatch_observer.writer import ObservationWriter, commit_result


class FlakySink:
    """Stores documents by id; refuses the next ``failures`` writes."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.stored: dict[str, dict[str, Any]] = {}

    def write(self, documents: list[Document]) -> None:
        if self.failures:
            self.failures -= 1
            raise SinkError("search server unreachable")
        self.stored.update(documents)


class Offsets:
    """Records what the writer asks of the consumer, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[int, int]]]] = []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition]:
        assert asynchronous is True
        self.calls.append(("commit", [(tp.partition, tp.offset) for tp in offsets]))
        return offsets

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("pause", [(tp.partition, tp.offset) for tp in partitions]))

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("resume", [(tp.partition, tp.offset) for tp in partitions]))


class Handle:
    """Serves the stand-in consumer, as ``RenewableClient`` serves the real one."""

    def __init__(self, client: Offsets) -> None:
        self.client = client


def _window(partition: int, start: int, end: int) -> ClosedWindow:
    now = datetime.now(UTC)
    return ClosedWindow(partition, start, end, now, now, WindowQuality(end - start + 1, 0, 0, {}), 0.0)


def _writer(
    sink: FlakySink, *, max_backoff: float = 30.0, bound: int = 1000
) -> tuple[ObservationWriter, Offsets]:
    owned = Ownership(lag_interval_seconds=15, replica="r0")
    owned.gain([0, 1], now=0.0)
    offsets = Offsets()
    documents = WindowDocuments(ORIGIN, REQUIRED, max_reported_fields=100)
    reporter = WindowMetrics(job=ORIGIN.job, topic=ORIGIN.topic)
    writer = ObservationWriter(
        Handle(offsets),
        sink,
        owned,
        documents,
        reporter,
        max_backoff=max_backoff,
        pending_lag_documents=bound,
    )
    return writer, offsets


def test_offsets_are_committed_after_the_write_at_the_last_window_of_each_partition() -> None:
    sink = FlakySink()
    writer, offsets = _writer(sink)
    writer.add_windows([_window(0, 0, 9), _window(1, 0, 4), _window(0, 10, 19)])
    writer.add_lag([("lag-doc", {"doc_type": "lag"})])
    assert writer.flush()
    assert sorted(sink.stored) == [
        "lag-doc",
        "passthrough-processed_visits-0-0-9",
        "passthrough-processed_visits-0-10-19",
        "passthrough-processed_visits-1-0-4",
    ]
    assert offsets.calls == [("commit", [(0, 20), (1, 5)])]
    assert not writer.pending


def test_a_refused_write_pauses_backs_off_and_commits_nothing_until_it_succeeds() -> None:
    sink = FlakySink(failures=2)
    writer, offsets = _writer(sink, max_backoff=0.75)
    writer.add_windows([_window(0, 0, 9)])
    assert not writer.flush()
    assert writer.paused and writer.delay == 0.5
    assert not writer.due(0.0)  # the back-off runs
    assert not writer.flush()
    assert writer.delay == 0.75  # doubled, capped by the setting
    assert offsets.calls == [("pause", [(0, -1001), (1, -1001)])] * 2
    assert writer.flush()
    assert offsets.calls[2:] == [("commit", [(0, 10)]), ("resume", [(0, -1001), (1, -1001)])]
    assert not writer.paused and writer.delay == 0.0
    assert sink.stored


def test_commit_skips_partitions_revoked_meanwhile_and_forget_drops_their_windows() -> None:
    writer, offsets = _writer(FlakySink())
    writer.add_windows([_window(0, 0, 9), _window(1, 0, 9), _window(1, 10, 19)])
    assert writer.forget([1]) == 2
    writer.add_windows([_window(1, 20, 29)])
    writer.ownership.lose([1])
    assert writer.flush()
    assert offsets.calls == [("commit", [(0, 10)])]


def _drift(partition: int, field: str) -> float | None:
    labels = {"job": "passthrough", "topic": "processed_visits", "partition": str(partition), "field": field}
    return REGISTRY.get_sample_value("observer_field_drift", labels)


def test_drift_gauges_follow_written_windows_and_leave_with_the_partition() -> None:
    writer, _offsets = _writer(FlakySink())
    windows = [_window(0, 0, 9), _window(1, 0, 9)]
    for window in windows:
        window.quality.null_counts = {"page": 0, "user_id": 0}
    windows[0].drift = {"page": 0.4, "user_id": 0.01}
    windows[1].drift = {"page": 0.02}
    writer.add_windows(windows)
    assert writer.flush()
    assert (_drift(0, "page"), _drift(0, "user_id"), _drift(1, "page")) == (0.4, 0.01, 0.02)
    writer.reporter.forget([0])
    assert _drift(0, "page") is None and _drift(0, "user_id") is None
    assert _drift(1, "page") == 0.02  # the partition still owned keeps its series
    # A window without a score (too small) clears its partition's series: no old score holds an alert.
    unscored = _window(1, 10, 19)
    unscored.quality.null_counts = {"page": 0}
    writer.add_windows([unscored])
    assert writer.flush()
    assert _drift(1, "page") is None


def _counted(partition: int) -> float | None:
    labels = {"topic": "processed_visits", "partition": str(partition)}
    return REGISTRY.get_sample_value("observer_counted_offset", labels)


def test_counted_offset_follows_written_windows_only_and_leaves_with_the_partition() -> None:
    sink = FlakySink(failures=1)
    writer, _offsets = _writer(sink)
    writer.reporter.forget([0, 1])  # another test's windows may have set these series
    writer.add_windows([_window(0, 0, 9), _window(0, 10, 19), _window(1, 0, 4)])
    assert not writer.flush()
    assert _counted(0) is None, "a window not yet stored is not counted"
    assert writer.flush()
    assert (_counted(0), _counted(1)) == (20, 5)
    writer.reporter.forget([0])
    assert _counted(0) is None and _counted(1) == 5


def test_lag_documents_beyond_the_bound_drop_the_oldest_and_are_counted() -> None:
    writer, _offsets = _writer(FlakySink(), bound=2)
    before = REGISTRY.get_sample_value("observer_lag_documents_dropped_total") or 0.0
    writer.add_lag([("a", {}), ("b", {}), ("c", {})])
    assert [doc_id for doc_id, _ in writer.lag] == ["b", "c"]
    assert REGISTRY.get_sample_value("observer_lag_documents_dropped_total") == pytest.approx(before + 1)


def test_a_failed_asynchronous_commit_is_logged_and_counted_and_a_good_one_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def failures() -> float:
        return REGISTRY.get_sample_value("observer_commit_failures_total") or 0.0

    before = failures()
    with caplog.at_level("WARNING"):
        commit_result(None, [TopicPartition("t", 0, 10), TopicPartition("t", 1, 20)])
        assert failures() == before and not caplog.records
        commit_result(KafkaError(KafkaError._WAIT_COORD), [TopicPartition("t", 0, 30)])
    assert failures() == before + 1
    (failed,) = (r.__dict__ for r in caplog.records if r.getMessage() == "commit_failed")
    assert failed["offsets"] == {0: 30} and "WAIT_COORD" in failed["error"]
