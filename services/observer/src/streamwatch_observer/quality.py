"""Data quality of one window of raw record values, computed on whole blocks (no per-record loop).

The fast path hands the joined values to Arrow's JSON reader in one call. Only a block that the fast path
cannot take as a whole (a value that is not a one-line JSON object, a required field of the wrong type)
is classified record by record; the records that pass are then read by Arrow again, so one bad record
does not slow down the rest of the block by much.

Usage::

    meter = QualityMeter(["event_time", "user_id", "page"], id_field="visit_id")
    meter.measure([b'{"visit_id": "v1", "user_id": "u1"}', b"not json"]).unparseable  # 1
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

logger = logging.getLogger(__name__)

_MIN_BLOCK = 1 << 20
_OPEN = ord("{")
_CLOSE = ord("}")
_SPLIT_BELOW = 64


@dataclass
class WindowQuality:
    """Quality counts of one window; ``null_counts`` holds null-or-empty counts per flattened field and
    ``invalid_records`` the parsed records with at least one required field null or empty."""

    records: int
    unparseable: int
    duplicates: int
    null_counts: dict[str, int]
    invalid_records: int = 0
    rows: pa.Table | pd.DataFrame | None = field(default=None, repr=False)

    def invalid(self, name: str) -> int:
        """Null-or-empty count of a field; a field no record had is null in every parsed record."""
        return self.null_counts.get(name, self.records - self.unparseable)


def _leaf_table(table: pa.Table) -> pa.Table:
    # Nested objects become dotted leaf columns (context.user.ip), the way the profile shows them.
    while any(pa.types.is_struct(t) for t in table.schema.types):
        table = table.flatten()
    return table


def _missing_mask(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """True where the value is null, or a string that is empty after trimming."""
    missing = pc.is_null(column)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), ""), False)
        missing = pc.or_(missing, empty)
    return missing


def _null_or_empty(column: pa.ChunkedArray) -> int:
    return int(pc.sum(_missing_mask(column)).as_py() or 0)


def _string_typed(table: pa.Table, names: tuple[str, ...]) -> bool:
    for name in names:
        if name in table.column_names:
            kind = table.schema.field(name).type
            if not (pa.types.is_string(kind) or pa.types.is_null(kind)):
                return False
    return True


def _shape_mask(values: list[bytes], data: bytes) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
    """Per value: does it look like a one-line JSON object (``{`` first, ``}`` last)? None when some
    value spans lines, so the joined block cannot be cut into rows by position."""
    if data.count(b"\n") != len(values) - 1:
        return None
    raw = np.frombuffer(data, dtype=np.uint8)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    nonempty = lengths > 0
    firsts = raw[np.minimum(starts, len(raw) - 1)]
    lasts = raw[np.maximum(starts + lengths - 1, 0)]
    mask: np.ndarray[Any, np.dtype[np.bool_]] = nonempty & (firsts == _OPEN) & (lasts == _CLOSE)
    return mask


def _arrow_read(data: bytes, rows: int, schema: pa.Schema) -> pa.Table | None:
    try:
        table = pj.read_json(
            io.BytesIO(data),
            read_options=pj.ReadOptions(block_size=max(_MIN_BLOCK, len(data) + 1), use_threads=False),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
        )
    except pa.ArrowInvalid:
        return None
    # Arrow skips blank lines and reads a top-level `null` as an empty row: the count must match.
    return table if table.num_rows == rows else None


def _conforms(value: bytes, typed: tuple[str, ...]) -> dict[str, Any] | None:
    try:
        record = json.loads(value)
    except ValueError:  # not JSON or not UTF-8
        return None
    if not isinstance(record, dict):
        return None
    for name in typed:
        if record.get(name) is not None and not isinstance(record[name], str):
            return None
    return record


class QualityMeter:
    """Computes :class:`WindowQuality` for windows of raw values with fixed required and id fields."""

    def __init__(self, required: list[str], id_field: str, keep_rows: bool = False) -> None:
        self.required = tuple(required)
        self.id_field = id_field
        self.keep_rows = keep_rows
        # Top-level fields that must be strings: read them as strings so Arrow neither guesses
        # timestamps for them nor accepts a number where a string belongs.
        top = [name for name in (*self.required, id_field) if "." not in name]
        self._typed = tuple(dict.fromkeys(top))
        self._schema = pa.schema([(name, pa.string()) for name in self._typed])

    def measure(self, values: list[bytes]) -> WindowQuality:
        """Quality of one window's values (in offset order)."""
        if not values:
            return WindowQuality(0, 0, 0, dict.fromkeys(self.required, 0))
        data = b"\n".join(values)
        mask = _shape_mask(values, data)
        if mask is not None and bool(mask.all()):
            table = _arrow_read(data, len(values), self._schema)
            if table is not None and _string_typed(table, self._typed):
                return self._from_table(table, len(values), 0)
        if mask is None:
            mask = np.ones(len(values), dtype=np.bool_)
        # Values that do not even look like objects are checked one by one (they are few); the rest is
        # read in halves so that one bad record costs a few Arrow reads, not a Python loop over all.
        suspects = [v for v in itertools.compress(values, ~mask) if _conforms(v, self._typed) is not None]
        candidates = list(itertools.compress(values, mask)) + suspects
        tables: list[pa.Table] = []
        good: list[bytes] = []
        self._split_read(candidates, tables, good)
        unparseable = len(values) - sum(t.num_rows for t in tables) - len(good)
        if good:
            table = _arrow_read(b"\n".join(good), len(good), self._schema)
            if table is not None and _string_typed(table, self._typed):
                tables.append(table)
                good = []
        try:
            if good:
                raise pa.ArrowInvalid("records only pandas can read")
            merged = (
                pa.concat_tables([_leaf_table(t) for t in tables], promote_options="permissive")
                if tables
                else pa.table({})
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Optional fields that change type between records: Arrow refuses them, pandas takes them.
            records = [r for r in (_conforms(v, self._typed) for v in good) if r is not None]
            frames = [t.to_pandas() for t in tables]
            frames.append(pd.json_normalize(records))
            return self._from_frame(pd.concat(frames, ignore_index=True), len(values), unparseable)
        return self._from_table(merged, len(values), unparseable)

    def _split_read(self, values: list[bytes], tables: list[pa.Table], good: list[bytes]) -> None:
        """Read ``values`` with Arrow, halving blocks that fail; small failing blocks go record by
        record (bad ones are dropped, conforming ones land in ``good``)."""
        if not values:
            return
        table = _arrow_read(b"\n".join(values), len(values), self._schema)
        if table is not None and _string_typed(table, self._typed):
            tables.append(table)
            return
        if len(values) < _SPLIT_BELOW:
            good.extend(v for v in values if _conforms(v, self._typed) is not None)
            return
        half = len(values) // 2
        self._split_read(values[:half], tables, good)
        self._split_read(values[half:], tables, good)

    def _from_table(self, table: pa.Table, records: int, unparseable: int) -> WindowQuality:
        leaves = _leaf_table(table)
        nulls = {name: _null_or_empty(leaves.column(name)) for name in leaves.column_names}
        invalid_records = leaves.num_rows
        present = [name for name in self.required if name in leaves.column_names]
        if len(present) == len(self.required):
            any_missing = _missing_mask(leaves.column(present[0]))
            for name in present[1:]:
                any_missing = pc.or_(any_missing, _missing_mask(leaves.column(name)))
            invalid_records = int(pc.sum(any_missing).as_py() or 0)
        for name in self.required:
            nulls.setdefault(name, leaves.num_rows)
        duplicates = 0
        if self.id_field in leaves.column_names:
            ids = leaves.column(self.id_field)
            present = len(ids) - ids.null_count
            duplicates = present - int(pc.count_distinct(ids, mode="only_valid").as_py())
        return WindowQuality(
            records, unparseable, duplicates, nulls, invalid_records, rows=leaves if self.keep_rows else None
        )

    def _from_frame(self, frame: pd.DataFrame, records: int, unparseable: int) -> WindowQuality:
        nulls: dict[str, int] = {}
        masks: dict[str, pd.Series] = {}
        for name in frame.columns:
            column = frame[name]
            empty = column.map(lambda v: isinstance(v, str) and not v.strip())
            masks[str(name)] = column.isna() | empty.astype(bool)
            nulls[str(name)] = int(masks[str(name)].sum())
        invalid_records = len(frame)
        if all(name in masks for name in self.required):
            invalid_records = int(pd.concat([masks[n] for n in self.required], axis=1).any(axis=1).sum())
        for name in self.required:
            nulls.setdefault(name, len(frame))
        duplicates = 0
        if self.id_field in frame.columns:
            ids = frame[self.id_field].dropna()
            duplicates = len(ids) - int(ids.nunique())
        return WindowQuality(
            records, unparseable, duplicates, nulls, invalid_records, rows=frame if self.keep_rows else None
        )
