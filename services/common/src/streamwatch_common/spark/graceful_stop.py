"""Stop a streaming query between micro-batches, never between a batch's write and its commit.

Spark runs micro-batch *N* in this order: ``offsets/N`` is written, the sink runs (our ``foreachBatch``
function), ``MicroBatchExecution`` writes ``commits/N`` after the sink has returned, then the batch's
progress is recorded (``query.lastProgress``, ``onQueryProgress``). ``query.stop()`` interrupts the query
thread wherever it is. Between the sink returning and ``commits/N`` being renamed into place, the interrupt
aborts the commit write (a ``commits/.N.<uuid>.tmp`` stays behind) and Spark takes the interrupt for a
clean stop: no error, yet batch *N* was written and is not committed, so the restart writes it again.

:func:`stop_between_batches` therefore closes a :class:`BatchGate` (a batch that starts later is refused
before it writes), waits for the batch inside the gate to leave and for Spark to record that batch's progress
(proof that ``commits/N`` exists), and only then calls ``query.stop()``. A batch that starts in between
is refused by the gate before it writes, so stopping it anywhere loses nothing.

Usage::

    gate = BatchGate()
    query = df.writeStream.foreachBatch(gate.guard(write_batch)).option(...).start()
    ...  # on SIGTERM:
    error = stop_gracefully(query, gate, timeout=40.0)  # None: stopped cleanly
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from streamwatch_common.errors import StreamwatchError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming.listener import StreamingQueryProgress
    from pyspark.sql.streaming.query import StreamingQuery

logger = logging.getLogger(__name__)

T = TypeVar("T")
_POLL_SECONDS = 0.1


class ShutdownInProgress(StreamwatchError):
    """Raised by a micro-batch that began after shutdown: nothing written, Spark replays it on restart."""


class BatchGate:
    """Tracks which micro-batch is writing; once closed, new batches are refused before they write.

    Refusing (raising) rather than skipping matters: Spark would mark a skipped batch as done and its
    records would never be written. A refused batch is not committed, so the restarted query replays it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._writing = False
        self._closed = False
        self._last_entered: int | None = None

    @property
    def last_entered(self) -> int | None:
        """Id of the last batch let in (it may have written); None if none was."""
        with self._cond:
            return self._last_entered

    def enter(self, batch_id: int) -> None:
        with self._cond:
            if self._closed:
                raise ShutdownInProgress(f"batch {batch_id} refused: shutting down")
            self._writing = True
            self._last_entered = batch_id

    def leave(self) -> None:
        with self._cond:
            self._writing = False
            self._cond.notify_all()

    def close(self, timeout: float) -> bool:
        """Refuse new batches; wait up to ``timeout`` s for the running one. True if none is running."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closed = True
            while self._writing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def guard(self, write: Callable[[DataFrame, int], T]) -> Callable[[DataFrame, int], T]:
        """``write`` as a ``foreachBatch`` function that passes through this gate."""

        def guarded(batch_df: DataFrame, batch_id: int) -> T:
            self.enter(batch_id)
            try:
                return write(batch_df, batch_id)
            finally:
                self.leave()

        return guarded


def stop_between_batches(query: StreamingQuery, gate: BatchGate, timeout: float) -> bool:
    """Stop ``query`` once the last batch let through ``gate`` is committed; wait at most ``timeout`` s.

    True when no written batch is left uncommitted. False after the timeout (the query is stopped anyway:
    the pod's grace period is finite; the batch in flight is written again after the restart) or when
    that batch failed and ended the query (``query.exception()`` says why).
    """
    deadline = time.monotonic() + timeout
    committed = gate.close(timeout) and _wait_committed(query, gate.last_entered, deadline)
    if not committed and query.isActive:
        logger.warning("stop_timeout", extra={"timeout_seconds": timeout, "batch_id": gate.last_entered})
    query.stop()
    return committed


def stop_gracefully(query: StreamingQuery, gate: BatchGate, timeout: float) -> str | None:
    """:func:`stop_between_batches`, logged; the error that ended ``query``, None for a clean stop.

    The refusal of a batch that began after the stop is part of a clean stop, not an error.
    """
    committed = stop_between_batches(query, gate, timeout)
    error = query.exception()
    message = None if error is None or ShutdownInProgress.__name__ in str(error) else str(error)
    if message is not None:
        logger.error("query_failed_while_stopping", extra={"error": message})
    logger.info("query_stopped", extra={"query_id": str(query.id), "batch_committed": committed})
    return message


def _wait_committed(query: StreamingQuery, batch_id: int | None, deadline: float) -> bool:
    while batch_id is not None and not _committed(query.lastProgress, batch_id):
        if not query.isActive:  # the batch failed (the query error says why) or the query ended
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(_POLL_SECONDS, remaining))
    return True


def _committed(progress: StreamingQueryProgress | None, batch_id: int) -> bool:
    """Whether ``progress`` proves that ``commits/<batch_id>`` was written.

    An executed batch's progress is recorded after its commit (its durations include ``commitOffsets``).
    An idle trigger records progress under the id of the batch it would run next: a later id proves the
    batch done, the same id does not (that batch may have started after the idle trigger).
    """
    if progress is None:
        return False
    return progress.batchId > batch_id or (
        progress.batchId == batch_id and "commitOffsets" in progress.durationMs
    )
