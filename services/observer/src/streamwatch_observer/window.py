"""A partition's open window: raw values collected in offset order until a record count or age closes it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from streamwatch_observer.quality import WindowQuality


@dataclass
class OpenWindow:
    """Records of one partition since the last closed window, in offset order."""

    partition: int
    start_offset: int
    end_offset: int = -1
    opened_at: float = field(default_factory=time.monotonic)
    values: list[bytes] = field(default_factory=list)
    first_timestamp_ms: int = 0
    last_timestamp_ms: int = 0

    def add(self, values: list[bytes], last_offset: int, first_ts: int, last_ts: int) -> None:
        """Append records; ``last_offset`` is the offset of the last one (inclusive)."""
        if not self.values:
            self.first_timestamp_ms = first_ts
            self.opened_at = time.monotonic()
        self.values.extend(values)
        self.last_timestamp_ms = last_ts
        self.end_offset = last_offset

    def due(self, now: float, max_age: float) -> bool:
        return bool(self.values) and now - self.opened_at >= max_age


@dataclass
class ClosedWindow:
    """A measured window waiting to be written; its offsets are committed once it is."""

    partition: int
    start_offset: int
    end_offset: int
    window_start: datetime
    window_end: datetime
    quality: WindowQuality
    measure_seconds: float


def from_millis(stamp_ms: int) -> datetime:
    """A Kafka record timestamp as an aware datetime (now when the record has none)."""
    if stamp_ms <= 0:
        return datetime.now(UTC)
    return datetime.fromtimestamp(stamp_ms / 1000.0, tz=UTC)
