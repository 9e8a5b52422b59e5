"""A partition's open window: raw values collected in offset order until a record count or age closes it.

:class:`OpenWindows` turns consumed batches into windows with as little Python work per record as the
client allows: one pass picks the value and partition of each message, offsets and timestamps are read
only at the window's edges.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import KafkaError, Message

from streamwatch_observer.quality import WindowQuality

logger = logging.getLogger(__name__)


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
    # Leaf field → drift score against the partition's previous window (empty: none given).
    drift: dict[str, float] = field(default_factory=dict)
    # Leaf field → drift score against the partition's pinned reference (empty: none given, e.g. while
    # the reference is built).
    drift_reference: dict[str, float] = field(default_factory=dict)


def from_millis(stamp_ms: int) -> datetime:
    """A Kafka record timestamp as an aware datetime (now when the record has none)."""
    if stamp_ms <= 0:
        return datetime.now(UTC)
    return datetime.fromtimestamp(stamp_ms / 1000.0, tz=UTC)


def _offset(msg: Message) -> int:
    # Records delivered without an error always carry an offset.
    offset = msg.offset()
    assert offset is not None
    return offset


class OpenWindows:
    """The open window of every owned partition; :meth:`add` returns the windows that became full.

    Usage::

        windows = OpenWindows(limit=10000)
        full = windows.add(consumer.consume(5000, timeout=0.5), owned={0, 1})
        full += windows.due(time.monotonic(), max_age=60)
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[int, OpenWindow] = {}

    def add(self, messages: Sequence[Message], owned: set[int]) -> list[OpenWindow]:
        """Append a consumed batch to the windows of the ``owned`` partitions; full windows leave."""
        by_partition: dict[int, list[Message]] = {}
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consume_error", extra={"error": str(error)})
                continue
            partition = msg.partition()
            assert partition is not None  # records delivered without an error carry their partition
            batch = by_partition.get(partition)
            if batch is None:
                batch = by_partition[partition] = []
            batch.append(msg)
        full: list[OpenWindow] = []
        for partition, batch in by_partition.items():
            if partition in owned:  # else fetched before a revoke: the new owner reads these again
                self._append(partition, batch, full)
        return full

    def _append(self, partition: int, batch: list[Message], full: list[OpenWindow]) -> None:
        start = 0
        while start < len(batch):
            window = self._open.get(partition)
            if window is None:
                window = self._open[partition] = OpenWindow(partition, _offset(batch[start]))
            chunk = batch[start : start + self.limit - len(window.values)]
            # Tombstones (no value) are kept as empty values and counted as unparseable.
            values = [m.value() or b"" for m in chunk]
            window.add(values, _offset(chunk[-1]), chunk[0].timestamp()[1], chunk[-1].timestamp()[1])
            start += len(chunk)
            if len(window.values) >= self.limit:
                full.append(self._open.pop(partition))

    def due(self, now: float, max_age: float) -> list[OpenWindow]:
        """Windows open for ``max_age`` seconds or longer, removed from the open set."""
        due = [p for p, w in self._open.items() if w.due(now, max_age)]
        return [self._open.pop(p) for p in due]

    def close_all(self) -> list[OpenWindow]:
        """Every open window that holds records (shutdown)."""
        windows = [w for w in self._open.values() if w.values]
        self._open.clear()
        return windows

    def drop(self, partitions: Sequence[int]) -> int:
        """Forget the open windows of ``partitions``; returns how many records they held."""
        return sum(len(self._open.pop(p).values) for p in partitions if p in self._open)

    @property
    def records(self) -> int:
        return sum(len(w.values) for w in self._open.values())
