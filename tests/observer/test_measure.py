"""Windows are measured on a worker thread, handed back in closing order, with a bound on those waiting."""

from __future__ import annotations

import threading

from observer.conftest import visit

from streamwatch_observer.drift import DriftTracker
from streamwatch_observer.measure import WindowMeasurer
from streamwatch_observer.quality import QualityMeter, WindowQuality
from streamwatch_observer.window import OpenWindow


class GatedMeter(QualityMeter):
    """The real meter, held back until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(["user_id", "page"], "visit_id")
        self.gate = threading.Event()

    def measure(self, values: list[bytes]) -> WindowQuality:
        self.gate.wait(30)
        return super().measure(values)


def _window(partition: int, start: int, values: list[bytes]) -> OpenWindow:
    window = OpenWindow(partition, start)
    window.add(values, start + len(values) - 1, 1_763_800_000_000, 1_763_800_001_000)
    return window


def test_windows_come_back_measured_in_closing_order() -> None:
    measurer = WindowMeasurer(QualityMeter(["user_id", "page"], "visit_id"), profiler=None, job="j")
    try:
        measurer.submit(_window(1, 0, [visit(i) for i in range(5)] + [b"not json"]))
        measurer.submit(_window(0, 0, [visit(1), visit(1), visit(2, page="")]))
        first, second = measurer.wait()
        assert (first.partition, first.end_offset, first.quality.records, first.quality.unparseable) == (
            1,
            5,
            6,
            1,
        )
        assert (second.partition, second.quality.duplicates, second.quality.invalid("page")) == (0, 1, 1)
        assert second.window_start.timestamp() == 1_763_800_000.0 and first.measure_seconds > 0
        assert measurer.pending == 0 and measurer.done() == []
    finally:
        measurer.close()


def test_submit_waits_while_the_bound_of_unmeasured_windows_is_reached() -> None:
    meter = GatedMeter()
    measurer = WindowMeasurer(meter, profiler=None, job="j", in_flight=1)
    try:
        measurer.submit(_window(0, 0, [visit(0)]))
        second = threading.Thread(target=measurer.submit, args=(_window(0, 1, [visit(1)]),))
        second.start()
        second.join(0.5)
        assert second.is_alive(), "a second window was accepted while one was unmeasured"
        assert measurer.done() == []  # nothing measured yet: nothing to write, nothing to commit
        meter.gate.set()
        second.join(10)
        assert [w.start_offset for w in measurer.wait()] == [0, 1]
    finally:
        meter.gate.set()
        measurer.close()


def test_drift_is_measured_per_partition_on_the_worker_and_rows_are_not_kept() -> None:
    measurer = WindowMeasurer(
        QualityMeter(["user_id", "page"], "visit_id"), profiler=None, job="j", drift=DriftTracker(50)
    )
    try:
        measurer.submit(_window(0, 0, [visit(i) for i in range(100)]))
        measurer.submit(_window(1, 0, [visit(i) for i in range(100)]))
        measurer.submit(_window(0, 100, [visit(i) for i in range(100, 200)]))
        measurer.submit(_window(1, 100, [visit(i, page="checkout.html") for i in range(100, 200)]))
        first0, first1, second0, second1 = measurer.wait()
        assert first0.drift == first1.drift == {}  # nothing to compare with yet
        assert second0.drift["page"] < 0.05  # the same five pages again
        assert second1.drift["page"] > 0.9  # one page none of the previous window had
        assert second0.quality.rows is None  # no profiler: the leaf table is freed after the drift
    finally:
        measurer.close()
