"""Which partitions this replica owns, and from which lag bucket on it may report each of them.

Lag for source partition *p* is reported by whichever replica owns partition *p* of the observed topic.
A partition gained during a bucket is reported from the next bucket on: its previous owner may already
have reported the current one, and the two must never both report a bucket. Rebalances are eager
(revoke everything, then assign), so the partitions really gained and lost are the difference between
the ownership before the first revoke and after the assignment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from streamwatch_observer import metrics
from streamwatch_observer.lag import PartitionLag

logger = logging.getLogger(__name__)


class Ownership:
    """Owned partitions, their latest lag in offsets and the first lag bucket each may be reported in.

    Usage::

        owned = Ownership(lag_interval_seconds=15, replica="observer-0")
        owned.lose([0, 1]); owned.gain([1])   # one eager rebalance: partition 0 was lost
        owned.reportable(probe.measure(owned.sorted()), owned.bucket())
    """

    def __init__(self, lag_interval_seconds: float, replica: str) -> None:
        self.lag_interval_seconds = lag_interval_seconds
        self.replica = replica
        self.assigned: set[int] = set()
        self.latest_lag: dict[int, int] = {}
        # Owned partitions before the current rebalance (eager: revoke all, then assign), for the diff.
        self._before_rebalance: set[int] | None = None
        self._lag_from_bucket: dict[int, int] = {}

    def sorted(self) -> list[int]:
        return sorted(self.assigned)

    def bucket(self, now: float | None = None) -> int:
        """The lag bucket of a wall-clock moment (now by default)."""
        return int((time.time() if now is None else now) // self.lag_interval_seconds)

    def gain(self, partitions: Iterable[int], now: float | None = None) -> tuple[list[int], list[int]]:
        """Partitions assigned; returns (gained, lost) against the ownership before this rebalance."""
        assigned = sorted(partitions)
        self.assigned.update(assigned)
        metrics.ASSIGNED.set(len(self.assigned))
        logger.info("partitions_assigned", extra={"gained": assigned, "owned": self.sorted()})
        before = self._before_rebalance or set()
        self._before_rebalance = None
        gained = sorted(self.assigned - before)
        lost = sorted(before - self.assigned)
        bucket = self.bucket(now)
        for partition in gained:
            self._lag_from_bucket[partition] = bucket + 1
        for partition in lost:
            self._lag_from_bucket.pop(partition, None)
        logger.info(
            "assignment_changed",
            extra={"gained": gained, "lost": lost, "owned": self.sorted(), "replica": self.replica},
        )
        if not self.assigned:
            # More replicas than partitions: this one idles, healthy and ready, until a rebalance.
            logger.info("no_partitions_assigned", extra={"replica": self.replica})
        return gained, lost

    def lose(self, partitions: Iterable[int]) -> None:
        """Partitions revoked or lost; their latest lag goes with them."""
        if self._before_rebalance is None:
            self._before_rebalance = set(self.assigned)
        for partition in partitions:
            self.assigned.discard(partition)
            self.latest_lag.pop(partition, None)
        metrics.ASSIGNED.set(len(self.assigned))

    def may_report(self, partition: int, bucket: int) -> bool:
        """Whether this replica may report the lag of owned ``partition`` in ``bucket``."""
        return bucket >= self._lag_from_bucket.get(partition, bucket)

    def reportable(self, lags: Iterable[PartitionLag], bucket: int) -> list[PartitionLag]:
        """The measurements this replica may report in ``bucket``; they update the latest lag."""
        kept = [lag for lag in lags if self.may_report(lag.partition, bucket)]
        for lag in kept:
            if lag.lag_offsets is None:
                self.latest_lag.pop(lag.partition, None)
            else:
                self.latest_lag[lag.partition] = lag.lag_offsets
        return kept
