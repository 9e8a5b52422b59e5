"""Graceful shutdown: SIGTERM/SIGINT ask the service to stop taking work and finish what is in flight."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

logger = logging.getLogger(__name__)


class GracefulShutdown:
    """Turns SIGTERM and SIGINT into an event that the service's loops check.

    Usage::

        shutdown = GracefulShutdown().install()
        while not shutdown.requested:
            do_one_unit_of_work()
        flush_in_flight_work()
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> GracefulShutdown:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self._event.is_set():
            return
        logger.info("shutdown_requested", extra={"signal": signal.Signals(signum).name})
        self._event.set()

    def request(self) -> None:
        """Ask for shutdown from code (tests, fatal errors in worker threads)."""
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until shutdown is requested or the timeout passes; True if requested."""
        return self._event.wait(timeout)
