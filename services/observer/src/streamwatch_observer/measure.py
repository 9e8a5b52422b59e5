"""Window quality measured on a worker thread, while the consume loop reads the next window.

Arrow's JSON reader and compute kernels release the interpreter lock, so measuring window *n* on this
thread while the loop consumes window *n + 1* uses a second core. Windows are measured one at a time in
the order they were closed, and :meth:`WindowMeasurer.done` hands them back in that order, so the
writer still writes and commits each partition's windows in offset order. At most ``in_flight`` closed
windows wait here: when the loop runs ahead, :meth:`WindowMeasurer.submit` waits for the oldest, which
bounds the memory held by unmeasured values.

The profile request is made here too: Arrow's memory pool hands back only what the freeing thread
freed, so the thread that built the window's tables converts and trims them.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait

import pyarrow as pa

from streamwatch_observer import metrics
from streamwatch_observer.drift import DriftTracker
from streamwatch_observer.profiler import Profiler
from streamwatch_observer.quality import QualityMeter
from streamwatch_observer.report import ProfileRequest
from streamwatch_observer.window import ClosedWindow, OpenWindow, from_millis

logger = logging.getLogger(__name__)

# One window measuring while the loop fills the next: a second waiting window bought little speed and
# cost one more window of raw values in memory (the memory-bound test with a slow sink caught it).
IN_FLIGHT = 1


class WindowMeasurer:
    """Measures closed windows in order on one worker thread.

    Usage::

        measurer = WindowMeasurer(
            QualityMeter(["user_id"], "visit_id"), profiler=None, job="passthrough", drift=DriftTracker(200)
        )
        measurer.submit(open_window)      # returns at once unless ``in_flight`` windows wait already
        writer.add_windows(measurer.done())
        measurer.close()
    """

    def __init__(
        self,
        meter: QualityMeter,
        profiler: Profiler | None,
        job: str,
        in_flight: int = IN_FLIGHT,
        drift: DriftTracker | None = None,
    ) -> None:
        self.meter = meter
        self.profiler = profiler
        # Drift needs the window's leaf table; the meter keeps it, and it is dropped after use below.
        self.drift = drift
        if drift is not None:
            meter.keep_rows = True
        self.job = job
        self.in_flight = in_flight
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="measure")
        self._queue: deque[Future[ClosedWindow]] = deque()

    def submit(self, window: OpenWindow) -> None:
        """Queue a closed window; waits while ``in_flight`` windows are still unmeasured."""
        unmeasured = [f for f in self._queue if not f.done()]
        if len(unmeasured) >= self.in_flight:
            wait(unmeasured[: len(unmeasured) - self.in_flight + 1])  # measured in order: the oldest
        self._queue.append(self._executor.submit(self._measure, window))

    def done(self) -> list[ClosedWindow]:
        """Measured windows in closing order, up to the first one still measuring.

        A measurement that raised raises here, in the consume loop's thread."""
        finished: list[ClosedWindow] = []
        while self._queue and self._queue[0].done():
            finished.append(self._queue.popleft().result())
        return finished

    def wait(self) -> list[ClosedWindow]:
        """Every queued window, measured (rebalance and shutdown: each takes well under a second)."""
        wait(list(self._queue))
        return self.done()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop the worker; windows not measured yet are given up (their offsets were never committed)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._queue.clear()

    def _measure(self, window: OpenWindow) -> ClosedWindow:
        started = time.perf_counter()
        quality = self.meter.measure(window.values)
        drift: dict[str, float] = {}
        if self.drift is not None and isinstance(quality.rows, pa.Table):
            drift = self.drift.observe(window.partition, quality.rows)
        if self.profiler is None:
            quality.rows = None
        elapsed = time.perf_counter() - started
        metrics.WINDOW_DURATION.observe(elapsed)
        closed = ClosedWindow(
            window.partition,
            window.start_offset,
            window.end_offset,
            from_millis(window.first_timestamp_ms),
            from_millis(window.last_timestamp_ms),
            quality,
            elapsed,
            drift,
        )
        window.values = []  # the raw values are not needed any more; free them before profiling
        self._hand_to_profiler(closed)
        return closed

    def _hand_to_profiler(self, closed: ClosedWindow) -> None:
        quality = closed.quality
        if self.profiler is None or quality.rows is None or not len(quality.rows):
            return
        rows = quality.rows
        frame = rows if not hasattr(rows, "to_pandas") else rows.to_pandas()
        quality.rows = None
        self.profiler.submit(
            ProfileRequest(
                self.job,
                {closed.partition: (closed.start_offset, closed.end_offset)},
                closed.window_start,
                closed.window_end,
                frame,
                dict(closed.drift),
            )
        )
