"""Partition ownership across eager rebalances, and which lag buckets this replica may report."""

from __future__ import annotations

from streamwatch_observer.lag import PartitionLag
from streamwatch_observer.ownership import Ownership


def _lag(partition: int, offsets: int | None) -> PartitionLag:
    return PartitionLag(partition, "ok" if offsets is not None else "unknown", 0, 0, offsets, None, 0)


def test_eager_rebalance_reports_what_was_really_gained_and_lost() -> None:
    owned = Ownership(lag_interval_seconds=10, replica="r0")
    assert owned.gain([0, 1], now=1000.0) == ([0, 1], [])
    owned.lose([0, 1])  # eager: everything is revoked first
    assert owned.gain([1, 2], now=1000.0) == ([2], [0])
    assert owned.sorted() == [1, 2]


def test_a_partition_gained_mid_bucket_is_reported_from_the_next_bucket_on() -> None:
    owned = Ownership(lag_interval_seconds=10, replica="r0")
    owned.gain([0], now=1005.0)  # bucket 100
    assert owned.reportable([_lag(0, 5)], bucket=100) == []
    assert owned.latest_lag == {}
    assert owned.reportable([_lag(0, 5)], bucket=101) == [_lag(0, 5)]
    assert owned.latest_lag == {0: 5}
    owned.reportable([_lag(0, None)], bucket=102)  # unknown lag: no stale number in window documents
    assert owned.latest_lag == {}


def test_losing_a_partition_forgets_its_lag() -> None:
    owned = Ownership(lag_interval_seconds=10, replica="r0")
    owned.gain([0, 1], now=0.0)
    owned.reportable([_lag(0, 3), _lag(1, 4)], bucket=1)
    owned.lose([1])
    assert owned.assigned == {0} and owned.latest_lag == {0: 3}
