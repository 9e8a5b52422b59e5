"""The summary a pinned drift reference holds (see ``reference`` for how it is built, stored and used).

:class:`Reference` is the merge of a partition's first windows: row counts and category counts summed
(at most ``TOP_VALUES`` categories, the rest in the "other" bin), numbers counted in the first window's
decile edges, null shares merged weighted by rows; it is pinned once ``target`` windows are merged. Its
stored form is JSON: category values as pairs (values are data, any text), infinite or undefined number
edges as strings.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from streamwatch_observer.drift import _OTHER, TOP_VALUES, FieldSummary, _binned, _numbers, score


@dataclass
class Reference:
    """Field summaries merged from a partition's first windows; pinned once ``target`` are merged."""

    target: int
    windows: int = 0
    # End offset of the last merged window: a window starting at or before it is merged already.
    merged_until: int = -1
    fields: dict[str, FieldSummary] = field(default_factory=dict)
    pinned: bool = False

    def merge(self, leaves: pa.Table, summaries: Mapping[str, FieldSummary], end_offset: int) -> None:
        """Add one window (``summaries`` of its ``leaves``); pins the reference at ``target`` windows."""
        for name, summary in summaries.items():
            before = self.fields.get(name)
            self.fields[name] = summary if before is None else _merged(before, summary, leaves[name])
        self.windows += 1
        self.merged_until = end_offset
        self.pinned = self.windows >= self.target

    def scores(self, leaves: pa.Table, summaries: Mapping[str, FieldSummary]) -> dict[str, float]:
        """Per leaf field known to the reference, the window's drift against it."""
        return {
            name: round(score(self.fields[name], summary, leaves[name]), 4)
            for name, summary in summaries.items()
            if name in self.fields
        }

    def to_document(self) -> dict[str, Any]:
        """A JSON-able form (read back by :meth:`from_document`)."""
        return {
            "windows": self.windows,
            "target_windows": self.target,
            "pinned": self.pinned,
            "merged_until": self.merged_until,
            "fields": {name: _field_document(summary) for name, summary in self.fields.items()},
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any], target: int) -> Reference:
        """A stored reference; one stored unpinned is built on up to ``target`` (the current setting)
        windows, one stored pinned stays as it is. Raises KeyError, TypeError or ValueError when the
        document is not one :meth:`to_document` made."""
        windows = int(document["windows"])
        return cls(
            target=target,
            windows=windows,
            merged_until=int(document["merged_until"]),
            fields={str(name): _field_summary(doc) for name, doc in document["fields"].items()},
            pinned=bool(document["pinned"]) or windows >= target,
        )


def _merged(before: FieldSummary, now: FieldSummary, column: pa.ChunkedArray | pa.Array) -> FieldSummary:
    rows = before.rows + now.rows
    null_share = (before.null_share * before.rows + now.null_share * now.rows) / rows if rows else 0.0
    if before.values is not None and now.values is not None:
        return FieldSummary(rows, null_share, values=_merged_values(before.values, now.values))
    if before.edges is not None and now.edges is not None:
        if not before.bin_counts:  # no number so far: the first window with numbers gives the edges
            return FieldSummary(rows, null_share, edges=now.edges, bin_counts=now.bin_counts)
        counts = before.bin_counts or ()
        numbers = _numbers(column)
        if numbers is not None and len(numbers):
            added = _binned(numbers, before.edges)
            counts = tuple(a + b for a, b in zip(counts, added, strict=True))
        return FieldSummary(rows, null_share, edges=before.edges, bin_counts=counts)
    # Timestamps (null share only), or a field whose type changed: the reference keeps its own kind.
    return FieldSummary(rows, null_share, before.values, before.edges, before.bin_counts)


def _merged_values(before: Mapping[str, int], now: Mapping[str, int]) -> dict[str, int]:
    counts = Counter(before)
    counts.update(now)
    other = counts.pop(_OTHER, 0)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    other += sum(count for _, count in ranked[TOP_VALUES:])
    kept = dict(ranked[:TOP_VALUES])
    return {**kept, _OTHER: other} if other else kept


def _number(value: float) -> float | str:
    # JSON has no infinity or NaN: those edges are stored as "inf", "-inf", "nan" (float() reads them back).
    return float(value) if math.isfinite(value) else str(float(value))


def _field_document(summary: FieldSummary) -> dict[str, Any]:
    doc: dict[str, Any] = {"rows": summary.rows, "null_share": summary.null_share}
    if summary.values is not None:
        # Pairs, not an object: values are data (any text), and "other" has a key no JSON store likes.
        doc["values"] = [[value, int(count)] for value, count in summary.values.items() if value != _OTHER]
        doc["other"] = int(summary.values.get(_OTHER, 0))
    if summary.edges is not None:
        doc["edges"] = [_number(edge) for edge in summary.edges]
        doc["bin_counts"] = [int(count) for count in summary.bin_counts or ()]
    return doc


def _field_summary(doc: Mapping[str, Any]) -> FieldSummary:
    values: dict[str, int] | None = None
    if "values" in doc:
        values = {str(value): int(count) for value, count in doc["values"]}
        if doc.get("other"):
            values[_OTHER] = int(doc["other"])
    edges = bin_counts = None
    if "edges" in doc:
        edges = tuple(float(edge) for edge in doc["edges"])
        bin_counts = tuple(int(count) for count in doc["bin_counts"])
    return FieldSummary(int(doc["rows"]), float(doc["null_share"]), values, edges, bin_counts)
