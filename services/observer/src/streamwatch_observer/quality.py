"""Data quality of one window of raw record values, judged by the shared visit record rule.

Which record is unparseable and which is invalid is decided by the shared rule,
:func:`streamwatch_common.visit_record.classify_values`, the same call the visits writer makes for its
dead-letter table, so both services agree on every record. This module counts: per window, the
records, the unparseable ones (an empty Kafka value included), the invalid ones, the null-or-empty values
per field and the duplicate ids.

The window is read in one call to the compiled classifier (``streamwatch_visit_classifier``, Rust:
``native/visit_classifier``), which releases the interpreter lock for the whole window, counts, and hands
back the parsed leaf columns as Arrow buffers. It is built from the schema (:data:`VISIT`) and decides
only the records it is sure of: one-line objects whose schema fields have the schema's JSON types. Every
other record (cut short, wrong types, unusual timestamp forms, a key twice, ...) is deferred to
``classify_values`` itself, and its rows and counts are merged in, so a bad record costs what it cost
before and is judged by the one rule (``tests/common/test_visit_record_agreement.py``,
``tests/observer/test_native_classifier.py``).

Usage::

    meter = QualityMeter(["event_time", "user_id", "page"], id_field="visit_id")
    meter.measure([b'{"visit_id": "v1", "user_id": "u1"}', b"not json"]).unparseable  # 1
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from streamwatch_visit_classifier import DEFER, Classifier

from streamwatch_common.visit_record import (
    VISIT,
    Verdict,
    classify_values,
    leaf_table,
    null_or_empty,
)

logger = logging.getLogger(__name__)


@dataclass
class WindowQuality:
    """Quality counts of one window; ``null_counts`` holds null-or-empty counts per flattened field of the
    visit schema and ``invalid_records`` the parsed records with at least one required field null or
    empty."""

    records: int
    unparseable: int
    duplicates: int
    null_counts: dict[str, int]
    invalid_records: int = 0
    rows: pa.Table | None = field(default=None, repr=False)

    def invalid(self, name: str) -> int:
        """Null-or-empty count of a field; a field outside the schema is null in every parsed record."""
        return self.null_counts.get(name, self.records - self.unparseable)


def duplicate_count(ids: pa.ChunkedArray | pa.Array) -> int:
    """Ids seen before in the same sequence: the first occurrence is not a duplicate, and a null or blank
    id is no id at all."""
    present = pc.filter(ids, pc.invert(null_or_empty(ids)))
    return len(present) - int(pc.count_distinct(present, mode="only_valid").as_py())


LEAVES: pa.Schema = leaf_table(VISIT.empty_table()).schema
"""The schema's leaf columns (``context.user.ip``), as counts, drift and profiles name them."""


def _leaf_kind(kind: pa.DataType) -> str:
    if pa.types.is_string(kind):
        return "string"
    if pa.types.is_boolean(kind):
        return "bool"
    if kind == pa.timestamp("us", tz="UTC"):
        return "timestamp"
    raise TypeError(f"the compiled classifier has no {kind} leaves")  # a schema change must extend it


def _column(kind: pa.DataType, rows: int, buffers: tuple[bytes, bytes, bytes | None]) -> pa.Array:
    """One leaf column from the classifier's buffers (validity bitmap, values, string data), no copy."""
    validity, values, data = buffers
    arrow = [pa.py_buffer(validity), pa.py_buffer(values)] + (
        [pa.py_buffer(data)] if data is not None else []
    )
    return pa.Array.from_buffers(kind, rows, arrow)


@dataclass(frozen=True)
class ClassifiedWindow:
    """One window as the meter reads it: per value its :class:`Verdict` (as int8), per leaf field its
    null-or-empty count over the parsed records, the duplicate ids, the parsed leaf rows in offset order
    (None unless asked for), and how many values the compiled classifier left to the shared rule."""

    verdicts: np.ndarray[Any, np.dtype[np.int8]]
    null_counts: dict[str, int]
    duplicates: int
    leaves: pa.Table | None
    deferred: int


def _table(rows: int, buffers: list[tuple[bytes, bytes, bytes | None]]) -> pa.Table:
    return pa.Table.from_arrays(
        [_column(f.type, rows, b) for f, b in zip(LEAVES, buffers, strict=True)], schema=LEAVES
    )


class QualityMeter:
    """Computes :class:`WindowQuality` for windows of raw values with fixed required and id fields."""

    def __init__(self, required: list[str], id_field: str, keep_rows: bool = False) -> None:
        self.required = tuple(required)
        self.id_field = id_field
        self.keep_rows = keep_rows
        self._classifier = Classifier(
            [(f.name, _leaf_kind(f.type)) for f in LEAVES], list(self.required), id_field
        )

    def measure(self, values: list[bytes]) -> WindowQuality:
        """Quality of one window's values (in offset order)."""
        window = self.classify(values)
        if window is None:
            return self._measure_reference(values)
        parsed = int(np.isin(window.verdicts, [int(Verdict.VALID), int(Verdict.INVALID)]).sum())
        nulls = dict(window.null_counts)
        for name in self.required:
            nulls.setdefault(name, parsed)
        return WindowQuality(
            records=len(values),
            unparseable=len(values) - parsed,
            duplicates=window.duplicates,
            null_counts=nulls,
            invalid_records=int((window.verdicts == int(Verdict.INVALID)).sum()),
            rows=window.leaves if self.keep_rows else None,
        )

    def classify(self, values: list[bytes]) -> ClassifiedWindow | None:
        """Every value's :class:`Verdict`, the null-or-empty count of each leaf, the duplicate ids and
        (with ``keep_rows``) the leaf rows: one call to the compiled classifier for the window, and the
        shared rule's own reading of the records it defers. None when the window holds over 2 GiB of
        text (32-bit string offsets): :meth:`measure` then reads it as before."""
        raw, counts, duplicates, rows, buffers = self._classifier.classify(values, self.keep_rows)
        verdicts = np.frombuffer(raw, dtype=np.int8).copy()
        deferred = np.flatnonzero(verdicts == DEFER)
        nulls = dict(zip(LEAVES.names, counts, strict=True))
        extra: pa.Table | None = None
        if len(deferred):
            result = classify_values([values[p] for p in deferred.tolist()], self.required)
            verdicts[deferred] = result.verdicts
            if result.visits.num_rows:
                extra = leaf_table(result.visits)
                if buffers is None:
                    # Ids repeated across decided and deferred records are counted over both columns.
                    raw, counts, duplicates, rows, buffers = self._classifier.classify(values, True)
        leaves = None if buffers is None else _table(rows, buffers)
        if leaves is None and (self.keep_rows or extra is not None) and rows:
            return None
        if extra is not None and leaves is not None:
            for name in extra.column_names:
                nulls[name] += int(pc.sum(null_or_empty(extra[name])).as_py() or 0)
            # Rows back in offset order: the decided ones, then the deferred ones that parsed.
            decided = np.flatnonzero(np.frombuffer(raw, dtype=np.int8) != DEFER)
            decided = decided[verdicts[decided] != int(Verdict.EMPTY)]
            order = np.argsort(np.concatenate([decided, deferred[result.positions]]), kind="stable")
            leaves = pa.concat_tables([leaves, extra.cast(LEAVES)]).take(pa.array(order))
            if self.id_field in LEAVES.names:
                duplicates = duplicate_count(leaves[self.id_field])
        return ClassifiedWindow(verdicts, nulls, duplicates, leaves, len(deferred))

    def _measure_reference(self, values: list[bytes]) -> WindowQuality:
        """The window read by the shared rule alone (pyarrow's JSON reader), as before the classifier."""
        result = classify_values(values, self.required)
        leaves = leaf_table(result.visits)
        nulls = {name: int(pc.sum(null_or_empty(leaves[name])).as_py() or 0) for name in leaves.column_names}
        for name in self.required:
            nulls.setdefault(name, leaves.num_rows)
        duplicates = duplicate_count(leaves[self.id_field]) if self.id_field in leaves.column_names else 0
        return WindowQuality(
            records=len(values),
            unparseable=result.count(Verdict.EMPTY, Verdict.UNPARSEABLE),
            duplicates=duplicates,
            null_counts=nulls,
            invalid_records=result.count(Verdict.INVALID),
            rows=leaves if self.keep_rows else None,
        )
