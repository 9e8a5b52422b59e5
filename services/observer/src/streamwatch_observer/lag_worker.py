"""Lag measurements on a thread of their own, so the consume loop never waits for them.

A measurement asks the broker for end offsets, reads the observed job's checkpoint (a file or an object
store) and fetches one record per lagging partition for its age: tens of milliseconds on a quiet
cluster, up to the probe's timeouts when a broker or the store is slow. Made in the consume loop, each one
stopped consuming for that long, the one at the assignment before the first window could fill.

One measurement at a time, in the order asked: :meth:`LagWorker.submit` starts one, :meth:`done` hands
back a finished one to the loop (which reports it: the ownership and the writer stay the loop's), and
:meth:`wait` waits for the one in flight. The loop waits before the ownership changes (revoke, lost, a
renewed consumer, shutdown) and reports what was measured under the ownership it was measured for, as
when the measurement ran inside the loop. The measurement never uses the group's consumer: a call on it
from another thread waited for the loop's consume call (past its own timeout), so the loop asks it for
the group's lag itself when it reports.

Usage::

    worker = LagWorker(measure)          # measure(partitions, bucket) -> LagRound, on the worker thread
    worker.submit([0, 1], bucket)        # returns at once
    finished = worker.done()             # a LagRound, or None while measuring (or nothing was asked)
    worker.close()
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from streamwatch_observer.documents import Origin
from streamwatch_observer.lag import PartitionLag


@dataclass(frozen=True)
class LagRound:
    """One lag measurement of the owned partitions, not yet filtered by what this replica may report.

    ``observed_partitions`` is the observed topic's partition count the watched jobs' lags were spread by
    (None: unknown; ``jobs.owner_of``)."""

    bucket: int
    lags: list[PartitionLag]
    watched: list[tuple[Origin, list[PartitionLag]]]
    observed_partitions: int | None


class LagWorker:
    """Runs ``measure(partitions, bucket)`` on one worker thread, one call at a time."""

    def __init__(self, measure: Callable[[list[int], int], LagRound]) -> None:
        self._measure = measure
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lag")
        self._future: Future[LagRound] | None = None

    @property
    def running(self) -> bool:
        """A measurement was asked for and not handed back yet."""
        return self._future is not None

    def submit(self, partitions: list[int], bucket: int) -> None:
        """Start measuring ``partitions`` for ``bucket``; the previous measurement must have been handed
        back (:meth:`done` or :meth:`wait`)."""
        if self._future is not None:
            raise RuntimeError("a lag measurement is still in flight")
        self._future = self._executor.submit(self._measure, partitions, bucket)

    def done(self) -> LagRound | None:
        """The finished measurement, once; None while it runs or when none was asked for. A measurement
        that raised raises here, in the consume loop's thread."""
        future = self._future
        if future is None or not future.done():
            return None
        self._future = None
        return future.result()

    def wait(self) -> LagRound | None:
        """The measurement in flight, finished (each of its requests is bounded by the probe's timeout)."""
        if self._future is not None:
            wait([self._future])
        return self.done()

    def close(self) -> None:
        """Stop the thread after the measurement in flight (its result is dropped: nothing reports it)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._future = None
