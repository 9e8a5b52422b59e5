"""Window quality measured on a worker thread, while the consume loop reads the next window.

The meter's compiled classifier releases the interpreter lock for a whole window in one call, and
Arrow's compute kernels release it too, so measuring window *n* on this thread while the loop consumes
window *n + 1* uses a second core. Windows are measured one at a time in
the order they were closed, and :meth:`WindowMeasurer.done` hands them back in that order, so the
writer still writes and commits each partition's windows in offset order. At most ``in_flight`` closed
windows wait here: when the loop runs ahead, :meth:`WindowMeasurer.submit` waits for the oldest, which
bounds the memory held by unmeasured values.

The profile request is made here too: Arrow's memory pool hands back only what the freeing thread
freed, so the thread that built the window's tables converts and trims them.

The pinned drift references of newly assigned partitions are loaded on this thread too
(:meth:`WindowMeasurer.prepare`), queued ahead of the partitions' first windows: the consume loop never
waits for Elasticsearch there.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait

import pyarrow as pa

from streamwatch_observer import metrics
from streamwatch_observer.drift import DriftTracker, summarize_leaves
from streamwatch_observer.profiler import Profiler
from streamwatch_observer.quality import QualityMeter
from streamwatch_observer.reference import ReferenceTracker
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
        *,
        drift: DriftTracker | None = None,
        reference: ReferenceTracker | None = None,
    ) -> None:
        self.meter = meter
        self.profiler = profiler
        # Drift needs the window's leaf table; the meter keeps it, and it is dropped after use below.
        self.drift = drift
        if drift is not None:
            meter.keep_rows = True
        # Scored with the drift tracker's summaries: used only together with ``drift``.
        self.reference = reference if drift is not None else None
        self.job = job
        self.in_flight = in_flight
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="measure")
        self._queue: deque[Future[ClosedWindow]] = deque()
        self._loads: list[Future[None]] = []

    def submit(self, window: OpenWindow) -> None:
        """Queue a closed window; waits while ``in_flight`` windows are still unmeasured."""
        unmeasured = [f for f in self._queue if not f.done()]
        if len(unmeasured) >= self.in_flight:
            wait(unmeasured[: len(unmeasured) - self.in_flight + 1])  # measured in order: the oldest
        self._queue.append(self._executor.submit(self._measure, window))

    def prepare(self, partitions: list[int]) -> None:
        """Load the pinned drift references of newly assigned ``partitions`` on the worker, ahead of their
        windows (returns at once; a failed load is logged, counted and retried at the next window)."""
        if self.reference is not None and partitions:
            self._loads.append(self._executor.submit(self.reference.load, partitions))

    def done(self) -> list[ClosedWindow]:
        """Measured windows in closing order, up to the first one still measuring.

        A measurement (or reference load) that raised raises here, in the consume loop's thread."""
        for load in [f for f in self._loads if f.done()]:
            self._loads.remove(load)
            load.result()
        finished: list[ClosedWindow] = []
        while self._queue and self._queue[0].done():
            finished.append(self._queue.popleft().result())
        return finished

    def wait(self) -> list[ClosedWindow]:
        """Every queued window, measured, and every reference load done (rebalance and shutdown: each
        takes well under a second, a load at most one Elasticsearch timeout)."""
        wait(list(self._queue))
        wait(self._loads)
        return self.done()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop the worker; windows not measured yet are given up (their offsets were never committed)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._queue.clear()
        self._loads.clear()
        if self.reference is not None:
            self.reference.close()  # its saves in flight land first

    def _measure(self, window: OpenWindow) -> ClosedWindow:
        started = time.perf_counter()
        quality = self.meter.measure(window.values)
        drift: dict[str, float] = {}
        reference: dict[str, float] = {}
        if self.drift is not None and isinstance(quality.rows, pa.Table):
            leaves = quality.rows
            # Summarized once, compared with the previous window and with the pinned reference.
            summaries = summarize_leaves(leaves) if leaves.num_rows >= self.drift.min_records else None
            drift = self.drift.observe(window.partition, leaves, summaries)
            if self.reference is not None and summaries is not None:
                reference = self.reference.observe(
                    window.partition, window.start_offset, window.end_offset, leaves, summaries
                )
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
            reference,
        )
        window.values = []  # the raw values are not needed any more; free them before profiling
        self._hand_to_profiler(closed)
        return closed

    def _hand_to_profiler(self, closed: ClosedWindow) -> None:
        quality = closed.quality
        if self.profiler is None or quality.rows is None or not len(quality.rows):
            return
        rows = quality.rows
        quality.rows = None
        self.profiler.submit(
            ProfileRequest(
                self.job,
                {closed.partition: (closed.start_offset, closed.end_offset)},
                closed.window_start,
                closed.window_end,
                rows,
                dict(closed.drift),
            )
        )
