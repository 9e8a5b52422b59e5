"""Read many one-line JSON objects with Arrow in as few calls as possible, and find the ones that fail.

Handing the newline-joined values to Arrow's JSON reader with an explicit schema runs an order of
magnitude faster than parsing record by record. Only a block that Arrow rejects as a whole (a value of
the wrong type, a duplicate key) is read again in halves, down to single records, so one bad record costs
a few extra reads rather than a Python loop over the block. A single record that fails only because a
non-string field holds a blank string is read again with that field null: blank counts as empty.

Values that are not shaped like a one-line JSON object never reach Arrow: pyarrow 26 crashes on a
top-level ``null``, and a value spanning lines would shift the rows. :mod:`streamwatch_common.visit_record`
states the rule these functions implement.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

_OPEN = ord("{")
_CLOSE = ord("}")
_MIN_BLOCK = 1 << 20

BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


def _read(data: bytes, rows: int, schema: pa.Schema) -> pa.Table | None:
    try:
        # Arrow's JSON reader copies string bytes without checking them; JSON text must be UTF-8.
        data.decode("utf-8")
        table = pj.read_json(
            io.BytesIO(data),
            # One block for the whole input: a block boundary inside a large record would split it.
            read_options=pj.ReadOptions(block_size=max(_MIN_BLOCK, len(data) + 1), use_threads=False),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):  # a type mismatch, bad JSON, or not UTF-8
        return None
    # Two objects on one line read as two rows: the count must match for rows to line up with records.
    return table if table.num_rows == rows else None


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        raise _DuplicateKeyError("a key appears twice")
    return record


def _null_blanks(record: dict[str, Any], fields: pa.Schema | pa.StructType) -> bool:
    """Set blank strings in non-string fields to null (in place); whether anything changed."""
    changed = False
    for spec in fields:
        value = record.get(spec.name)
        if pa.types.is_struct(spec.type):
            if isinstance(value, dict):
                changed |= _null_blanks(value, spec.type)
        elif isinstance(value, str) and not value.strip() and not pa.types.is_string(spec.type):
            record[spec.name] = None
            changed = True
    return changed


def _read_one(value: bytes, schema: pa.Schema) -> pa.Table | None:
    """A record Arrow rejected, read again with blank non-string fields as null; None if still bad."""
    try:
        record = json.loads(value, object_pairs_hook=_no_duplicates)
    except ValueError:  # not JSON, not UTF-8, or a duplicate key
        return None
    if not isinstance(record, dict) or not _null_blanks(record, schema):
        return None
    return _read(json.dumps(record).encode(), 1, schema)


def _parse_block(values: list[bytes], schema: pa.Schema) -> tuple[list[pa.Table], list[bool]]:
    """Arrow tables of the records that parse (in order) and, per value, whether it parsed."""
    table = _read(b"\n".join(values), len(values), schema)
    if table is not None:
        return [table], [True] * len(values)
    if len(values) == 1:
        table = _read_one(values[0], schema)
        return ([table], [True]) if table is not None else ([], [False])
    middle = len(values) // 2
    left_tables, left_ok = _parse_block(values[:middle], schema)
    right_tables, right_ok = _parse_block(values[middle:], schema)
    return left_tables + right_tables, left_ok + right_ok


def _one_line_object(value: bytes) -> bytes | None:
    """The value as a one-line JSON object candidate, or None when it cannot be one."""
    # Whitespace around and between JSON tokens is insignificant; inside a string a raw line break is
    # invalid JSON anyway, so replacing it cannot turn a bad record into a good one.
    value = value.replace(b"\n", b" ").replace(b"\r", b" ").strip()
    return value if len(value) >= 2 and value[0] == _OPEN and value[-1] == _CLOSE else None


def parse_objects(values: list[bytes], schema: pa.Schema) -> tuple[pa.Table, BoolArray]:
    """Non-empty values → (rows of the values that parse with ``schema``, in order; per value: parsed?)."""
    parsed = np.zeros(len(values), dtype=np.bool_)
    if not values:
        return schema.empty_table(), parsed
    data = b"\n".join(values)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    raw = np.frombuffer(data, dtype=np.uint8)
    shaped: BoolArray = (raw[starts] == _OPEN) & (raw[starts + lengths - 1] == _CLOSE)
    if data.count(b"\n") != len(values) - 1 or b"\r" in data:
        shaped &= np.fromiter((b"\n" not in v and b"\r" not in v for v in values), np.bool_, len(values))
    candidates: list[bytes] = []
    positions: list[int] = []
    if bool(shaped.all()):
        candidates, order = values, np.arange(len(values))
    else:
        # The few odd values (cut short, padded, multi-line) are looked at one by one.
        for position in np.flatnonzero(~shaped).tolist():
            fixed = _one_line_object(values[position])
            if fixed is not None:
                candidates.append(fixed)
                positions.append(position)
        ok_positions = np.flatnonzero(shaped)
        candidates = [values[p] for p in ok_positions.tolist()] + candidates
        order = np.concatenate([ok_positions, np.array(positions, dtype=np.int64)])
    if not candidates:
        return schema.empty_table(), parsed
    tables, ok = _parse_block(candidates, schema)
    parsed_order = order[np.array(ok, dtype=np.bool_)]
    # One chunk per column: element-wise kernels over several differently chunked inputs are not safe.
    table = pa.concat_tables(tables).combine_chunks() if tables else schema.empty_table()
    # Rows back into input order, whatever order the odd values were read in.
    if len(parsed_order) and bool((np.diff(parsed_order) < 0).any()):
        sort = np.argsort(parsed_order, kind="stable")
        table, parsed_order = table.take(pa.array(sort)), parsed_order[sort]
    parsed[parsed_order] = True
    return table, parsed
