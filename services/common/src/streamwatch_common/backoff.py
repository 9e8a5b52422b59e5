"""Exponential back-off: the one way streamwatch waits between retries."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays ``first``, ``2 * first``, ... capped at ``maximum``; :meth:`reset` after a success.

    Usage::

        backoff = Backoff(first=0.5, maximum=30)
        while not try_once():
            time.sleep(backoff.next_delay())
    """

    first: float
    maximum: float
    _current: float = field(default=0.0, init=False)

    def next_delay(self) -> float:
        self._current = self.first if self._current == 0 else min(self.maximum, self._current * 2)
        return self._current

    def reset(self) -> None:
        self._current = 0.0
