"""Drift of each field of a partition's windows, from compact per-window summaries.

A window is summarized per leaf field (``context.user.ip``) by its null share and either the counts of
its most frequent values (strings, booleans) or counts in its own decile bins (numbers). Timestamps
are judged by their null share only: event times move forward with every window, and their spread
within one follows the producer's rate (bursts scored 0.6 on stable data in a process run).

Each window is compared with two things, scored the same way:

- the partition's **previous window** (:class:`DriftTracker`, kept in memory): catches a step change in
  the window it starts in or the next, and forgets it one window later (shifted then compares with
  shifted). Lost on every rebalance.
- the partition's **pinned reference** (``reference``): the merged summaries of its first
  ``drift_reference_windows`` windows, stored in Elasticsearch so a new owner or a restart keeps it.
  Catches a slow drift, each step of which stays below the threshold window to window, and a step
  change for as long as it lasts.

The score is the **Jensen-Shannon distance** (base 2, so 0 = same distribution, 1 = disjoint), not the
population stability index: it is symmetric, bounded (one threshold fits every field) and defined when
a bin is empty on one side, where PSI's logarithm of a zero share needs a floor that decides the score.
The divergence two samples of one distribution show by chance is subtracted before the square root
(see :func:`js_distance`), so a field with many values in a small window does not drift while nothing
changed. Categories are compared value by value when both windows list all their values (at most
``TOP_VALUES`` distinct ones), so a brand-new value scores as new; when a list is cut, only the values
on both lists are compared and the rest is one "other" bin on each side, so an identifier (all values
distinct) never drifts. Every compared bin gets half a count of smoothing, so a category unseen on one
side does not make small windows look disjoint. The score of a field is the larger of that distance
and the change of its null share, so a field that starts to be missing drifts even when its remaining
values look the same.

Below ``min_records`` parsed rows no score is given and the window is no reference (neither the next
window's nor part of a pinned one): with the generator's records, 200-row windows stayed below 0.21 in
590 stable comparisons, 100-row ones did not stay below 0.25 (``tests/observer/test_drift.py`` and the
observer README have the numbers).

Usage::

    tracker = DriftTracker(min_records=200)
    tracker.observe(0, leaves)        # first window of partition 0: {} (nothing to compare with)
    tracker.observe(0, next_leaves)   # {"page": 0.03, "context.technical.browser": 0.01, ...}
    tracker.forget([0])               # partition revoked: its next owner starts afresh
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamwatch_common.visit_record import null_or_empty

TOP_VALUES = 128
"""Most frequent values kept per string field (the visit schema's categories all fit)."""
BINS = 10
"""Quantile bins of a numeric field."""
SMOOTHING = 0.5
"""Pseudo-count added to each compared bin (Jeffreys prior)."""
_OTHER = "\x00other"
"""Key of the values beyond the most frequent ones (a real value spelled so would only join "other")."""


@dataclass(frozen=True)
class FieldSummary:
    """One field in one window: rows, null share and either value counts or bin edges with counts."""

    rows: int
    null_share: float
    values: Mapping[str, int] | None = None
    edges: tuple[float, ...] | None = None
    bin_counts: tuple[int, ...] | None = None


def js_distance(p: Iterable[float], q: Iterable[float], noise_floor: bool = False) -> float:
    """Jensen-Shannon distance (base 2) of two count vectors of equal length (normalized here).

    With ``noise_floor``, the divergence two samples of these sizes from one distribution show on
    average, (k - 1)(1/n + 1/m) / (8 ln 2) bits for k bins (the chi-square approximation of the JS
    divergence), is subtracted first: sampling noise grows with the bins and shrinks with the records,
    and without this a many-valued field in a small window drifts while nothing changed."""
    a = np.asarray(list(p), dtype=float)
    b = np.asarray(list(q), dtype=float)
    n, m_total = a.sum(), b.sum()
    if n <= 0 or m_total <= 0:
        return 0.0
    a, b = a / n, b / m_total
    m = (a + b) / 2

    def kl(x: np.ndarray, y: np.ndarray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / y[mask])))

    divergence = (kl(a, m) + kl(b, m)) / 2
    if noise_floor:
        divergence -= (len(a) - 1) * (1 / n + 1 / m_total) / (8 * math.log(2))
    return min(1.0, math.sqrt(max(0.0, divergence)))


def _numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """Non-null values as floats. None: not numeric."""
    kind = column.type
    valid = pc.drop_null(column)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        numbers: np.ndarray = valid.to_numpy(zero_copy_only=False).astype(float)
        return numbers
    return None


def summarize(column: pa.ChunkedArray | pa.Array) -> FieldSummary:
    """The summary of one column of a window."""
    rows = len(column)
    missing = null_or_empty(column)
    nulls = int(pc.sum(missing).as_py() or 0) if rows else 0
    null_share = nulls / rows if rows else 0.0
    if pa.types.is_timestamp(column.type):
        # Only the null share: where the timestamps fall says when records were made, and how fast
        # (a process run with bursts gave 0.6 on stable data), not what they are.
        return FieldSummary(rows, null_share)
    numbers = _numbers(column)
    if numbers is not None:
        if not len(numbers):
            return FieldSummary(rows, null_share, edges=(), bin_counts=())
        edges = tuple(np.unique(np.quantile(numbers, np.linspace(0, 1, BINS + 1)[1:-1])))
        return FieldSummary(rows, null_share, edges=edges, bin_counts=_binned(numbers, edges))
    counts = pc.value_counts(pc.cast(pc.filter(column, pc.invert(missing)), pa.string()))
    # Ranked in Arrow: an id column has a distinct value per record, too many to sort as Python objects.
    order = pc.array_sort_indices(counts.field("counts"), order="descending")[:TOP_VALUES]
    kept = pc.take(counts, order)
    top = dict(zip(kept.field("values").to_pylist(), kept.field("counts").to_pylist(), strict=True))
    other = rows - nulls - sum(top.values())
    return FieldSummary(rows, null_share, values={**top, _OTHER: other} if other else top)


def summarize_leaves(leaves: pa.Table) -> dict[str, FieldSummary]:
    """The summary of every leaf column of a window (computed once, compared with both references)."""
    return {name: summarize(leaves[name]) for name in leaves.column_names}


def _binned(numbers: np.ndarray, edges: tuple[float, ...]) -> tuple[int, ...]:
    # Bin i holds edges[i-1] < x <= edges[i]; one open bin on each end.
    return tuple(int(c) for c in np.bincount(np.searchsorted(edges, numbers), minlength=len(edges) + 1))


def _category_score(before: Mapping[str, int], now: Mapping[str, int]) -> float:
    # Two complete summaries (every value listed) are compared value by value, so a value new to the
    # window scores as new. When either list is cut, a value missing from it has an unknown count, and
    # which of the many rare values made the cut is chance: only values listed on both sides are
    # compared, all others are one "other" bin on each side (a new frequent value still moves mass there).
    if _OTHER in before or _OTHER in now:
        compared = sorted((set(before) & set(now)) - {_OTHER})
    else:
        compared = sorted(set(before) | set(now))
    other_before = sum(before.values()) - sum(before.get(k, 0) for k in compared)
    other_now = sum(now.values()) - sum(now.get(k, 0) for k in compared)
    p = [before.get(k, 0) + SMOOTHING for k in compared] + [other_before + SMOOTHING]
    q = [now.get(k, 0) + SMOOTHING for k in compared] + [other_now + SMOOTHING]
    return js_distance(p, q, noise_floor=True)


def score(before: FieldSummary, now: FieldSummary, column: pa.ChunkedArray | pa.Array) -> float:
    """Drift of ``now`` (summary of ``column``) against ``before``: the JS distance of the values or the
    change of the null share, whichever is larger."""
    null_change = abs(now.null_share - before.null_share)
    if before.values is not None and now.values is not None:
        return max(null_change, _category_score(before.values, now.values))
    if before.edges is not None and before.bin_counts and now.bin_counts is not None:
        numbers = _numbers(column)
        if numbers is None or not len(numbers):
            return null_change
        p = [c + SMOOTHING for c in before.bin_counts]
        q = [c + SMOOTHING for c in _binned(numbers, before.edges)]
        return max(null_change, js_distance(p, q, noise_floor=True))
    return null_change  # the type changed between windows, or no values on one side


class DriftTracker:
    """The last window summary of every owned partition, and each new window's drift against it.

    Not thread-safe: one thread (the measuring worker) observes, and :meth:`forget` runs only while no
    window is being measured (rebalance callbacks wait for the worker first)."""

    def __init__(self, min_records: int) -> None:
        self.min_records = min_records
        self._last: dict[int, dict[str, FieldSummary]] = {}

    def observe(
        self, partition: int, leaves: pa.Table, summaries: dict[str, FieldSummary] | None = None
    ) -> dict[str, float]:
        """Per leaf field, the drift of this window against the partition's previous one ({} for the
        first window, and when either window is below ``min_records`` rows). ``summaries``: the
        window's :func:`summarize_leaves`, when the caller made them already."""
        if leaves.num_rows < self.min_records:
            return {}  # too small to compare, and too small to be the next window's reference
        if summaries is None:
            summaries = summarize_leaves(leaves)
        before = self._last.get(partition)
        self._last[partition] = summaries
        if before is None:
            return {}
        return {
            name: round(score(before[name], summary, leaves[name]), 4)
            for name, summary in summaries.items()
            if name in before
        }

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked or lost: their next owner starts without a reference window."""
        for partition in partitions:
            self._last.pop(partition, None)

    @property
    def partitions(self) -> list[int]:
        return sorted(self._last)
