"""Lets a graceful stop wait for the running micro-batch and keeps the next one from starting to write."""

from __future__ import annotations

import threading
import time

from streamwatch_common.errors import StreamwatchError


class ShutdownInProgress(StreamwatchError):
    """Raised by a micro-batch that began after shutdown: nothing written, Spark replays it on restart."""


class BatchGate:
    """Tracks whether a micro-batch is writing; once closed, new batches are refused before they write.

    Refusing (raising) rather than skipping matters: Spark would mark a skipped batch as done and its
    records would never be copied. A refused batch is not committed, so the restarted query replays it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._writing = False
        self._closed = False

    def enter(self, batch_id: int) -> None:
        with self._cond:
            if self._closed:
                raise ShutdownInProgress(f"batch {batch_id} refused: shutting down")
            self._writing = True

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
