"""What to send next: which partition (with optional skew) and which kind of row.

Partitions are chosen explicitly rather than left to the client's partitioner so per-partition counts
are exact and skew is precise. Keys stay consistent with partitions anyway: a record's key always hashes
(CRC32 modulo the partition count, librdkafka's ``consistent`` partitioner) to the partition it is
sent to, so a duplicate lands where its original did.
"""

from __future__ import annotations

import random
import zlib
from typing import Literal

from streamwatch_generator.settings import GeneratorSettings

Kind = Literal["valid", "missing_fields", "duplicate", "unparseable"]
KINDS: tuple[Kind, ...] = ("valid", "missing_fields", "duplicate", "unparseable")


def partition_for(key: bytes, partitions: int) -> int:
    """The partition a key belongs to (same function as librdkafka's ``consistent`` partitioner)."""
    return zlib.crc32(key) % partitions


class KindChooser:
    """Draws the kind of each row from the configured composition percentages."""

    def __init__(self, settings: GeneratorSettings) -> None:
        self._thresholds: list[tuple[float, Kind]] = []
        edge = 0.0
        composition: tuple[tuple[float, Kind], ...] = (
            (settings.missing_fields_percent, "missing_fields"),
            (settings.duplicate_percent, "duplicate"),
            (settings.unparseable_percent, "unparseable"),
        )
        for share, kind in composition:
            edge += share / 100
            self._thresholds.append((edge, kind))

    def choose(self, rng: random.Random) -> Kind:
        draw = rng.random()
        for edge, kind in self._thresholds:
            if draw < edge:
                return kind
        return "valid"


class PartitionChooser:
    """Spreads records evenly, or skews one partition: ``more`` gives it a fixed share of all records,
    ``pause`` stops sending to it after it received ``skew_pause_after`` records."""

    def __init__(self, settings: GeneratorSettings, partitions: int) -> None:
        self.partitions = partitions
        self._skewed = settings.skew_partition
        self._mode = settings.skew_mode
        self._share = settings.skew_share_percent / 100
        self._pause_after = settings.skew_pause_after
        self._sent_to_skewed = 0
        self._others = [p for p in range(partitions) if p != self._skewed]

    @property
    def paused(self) -> bool:
        """True once the ``pause`` partition got its records and receives no more."""
        return self._mode == "pause" and self._sent_to_skewed >= self._pause_after

    def choose(self, rng: random.Random) -> int:
        if self._skewed is None or not self._others:
            return rng.randrange(self.partitions)
        if self._mode == "more":
            if rng.random() < self._share:
                return self._skewed
            return rng.choice(self._others)
        if self.paused:
            return rng.choice(self._others)
        partition = rng.randrange(self.partitions)
        if partition == self._skewed:
            self._sent_to_skewed += 1
        return partition
