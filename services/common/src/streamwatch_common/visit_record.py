"""The visit record: its Arrow schema, the default required fields and the one rule that classifies a value.

Every service that judges visit records calls :func:`classify_values`, so the visits writer's dead-letter
table and the observer's quality counts agree on every record. Each Kafka value gets one
:class:`Verdict`:

- ``EMPTY``: the value is null or zero bytes.
- ``UNPARSEABLE``: the value is not one JSON object that fits :data:`VISIT`. That includes a top-level
  null, array, number or string; two objects in one value; a cut-short object; bytes that are not UTF-8;
  a key given twice in one object; and any field of the schema (required or optional, top-level or nested)
  whose value has the wrong type, such as ``"event_time": "yesterday"``, ``"keep_private": "yes"`` or
  ``"user_id": 5``. A field the schema does not name is ignored, whatever its type.
- ``INVALID``: the value parses, but a required field is null, absent, or blank (empty after trimming
  whitespace).
- ``VALID``: everything else.

A value that is blank after trimming counts as empty (null) in any field, whatever its type:
``"event_time": ""`` makes a record ``INVALID`` (a required field is empty), ``"keep_private": " "``
leaves a ``VALID`` record with ``keep_private`` null. Required fields are named with dots for nested
fields (``context.user.ip``); a name outside the schema is never read, so it is missing in every record.

Usage::

    result = classify_values([b'{"visit_id": "v1", "user_id": "u1"}', b"not json"], DEFAULT_REQUIRED_FIELDS)
    [Verdict(v) for v in result.verdicts]  # [INVALID, UNPARSEABLE]: event_time and page are missing
    result.missing.to_pylist()  # ["event_time,page"]: one entry per parsed record
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamwatch_common.visit_json import parse_objects

if TYPE_CHECKING:
    from pyspark.sql import Column

_TIMESTAMP = pa.timestamp("us", tz="UTC")

VISIT = pa.schema(
    [
        ("visit_id", pa.string()),
        ("event_time", _TIMESTAMP),
        ("user_id", pa.string()),
        ("keep_private", pa.bool_()),
        ("page", pa.string()),
        (
            "context",
            pa.struct(
                [
                    ("referral", pa.string()),
                    ("ad_id", pa.string()),
                    (
                        "user",
                        pa.struct(
                            [("ip", pa.string()), ("login", pa.string()), ("connected_since", _TIMESTAMP)]
                        ),
                    ),
                    (
                        "technical",
                        pa.struct(
                            [
                                ("browser", pa.string()),
                                ("browser_version", pa.string()),
                                ("network_type", pa.string()),
                                ("device_type", pa.string()),
                                ("device_version", pa.string()),
                            ]
                        ),
                    ),
                ]
            ),
        ),
    ]
)

# The fields downstream consumers need; each service's `required_fields` setting defaults to these.
DEFAULT_REQUIRED_FIELDS: tuple[str, ...] = ("event_time", "user_id", "page")
# The field whose repeats within one window are duplicates.
ID_FIELD = "visit_id"

IntArray = np.ndarray[Any, np.dtype[np.int64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


class Verdict(IntEnum):
    """What one Kafka value is under the visit record rule (see the module docstring)."""

    VALID = 0
    EMPTY = 1
    UNPARSEABLE = 2
    INVALID = 3


@dataclass(frozen=True)
class Classified:
    """The verdicts of a sequence of values and the visits read from the ones that parse.

    ``visits`` has one row per ``VALID`` or ``INVALID`` value, in input order, with the :data:`VISIT`
    schema; ``positions`` gives each row's index in the input; ``missing`` gives each row's required
    fields that are null or blank, comma-joined ("" for a ``VALID`` row)."""

    verdicts: np.ndarray[Any, np.dtype[np.int8]]
    visits: pa.Table
    positions: IntArray
    missing: pa.Array

    def count(self, *verdicts: Verdict) -> int:
        """How many values got one of ``verdicts``."""
        return int(np.isin(self.verdicts, [int(v) for v in verdicts]).sum())


def null_or_empty(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """True where the value is null, or a string that is empty after trimming whitespace."""
    missing = pc.is_null(column)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), ""), False)
        missing = pc.or_(missing, blank)
    return missing


# What pyarrow's utf8_trim_whitespace trims, as a Java regular expression: (?U) makes \s Unicode's
# White_Space, and Arrow trims the information separators U+001C..U+001F as well.
SPARK_BLANK_PATTERN = r"(?U)^[\s\x1c-\x1f]*$"


def spark_null_or_empty(column: Column) -> Column:
    """:func:`null_or_empty` as a Spark expression: null, or blank after trimming whitespace.

    The Arrow rule above judges data already handed to Python. ``DataFrame.observe`` aggregates inside
    Spark's own plan, on the executors, while the query runs, so what it counts must be a Spark
    expression; this is that rule written for Spark. Any type is cast to text first: only text can be
    blank, so for other types this is the null check alone, as in :func:`null_or_empty`.
    """
    return column.isNull() | column.cast("string").rlike(SPARK_BLANK_PATTERN)


def leaf_table(table: pa.Table) -> pa.Table:
    """Nested objects as dotted leaf columns (``context.user.ip``), the way counts and profiles name them."""
    while any(pa.types.is_struct(t) for t in table.schema.types):
        table = table.flatten()
    return table


def field_column(table: pa.Table, dotted: str) -> pa.ChunkedArray | pa.Array:
    """The column of a (possibly nested) field; all nulls for a name the schema does not have."""
    head, *rest = dotted.split(".")
    if head not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    column: pa.ChunkedArray | pa.Array = table[head]
    for name in rest:
        kind = column.type
        if not pa.types.is_struct(kind) or kind.get_field_index(name) < 0:
            return pa.nulls(table.num_rows, pa.string())
        column = pc.struct_field(column, name)
    return column


def missing_fields(table: pa.Table, required_fields: Sequence[str]) -> pa.Array:
    """Per row: the required fields that are null or blank, comma-joined ("" when none is missing)."""
    # Each row's set of missing fields as bits of one integer; only the combinations that occur are
    # turned into text. (pyarrow 26's binary_join_element_wise drops all-null rows with "skip".)
    combination = np.zeros(table.num_rows, dtype=np.int64)
    for bit, name in enumerate(required_fields):
        missing = null_or_empty(field_column(table, name)).to_numpy(zero_copy_only=False)
        combination |= missing.astype(np.int64) << bit
    seen, index = np.unique(combination, return_inverse=True)
    texts = [
        ",".join(name for bit, name in enumerate(required_fields) if code >> bit & 1)
        for code in seen.tolist()
    ]
    return pc.take(pa.array(texts, pa.string()), pa.array(index.astype(np.int64)))


def classify_values(values: Sequence[bytes | None], required_fields: Sequence[str]) -> Classified:
    """The verdict of every value (in order) and the visits of those that parse."""
    verdicts = np.full(len(values), int(Verdict.UNPARSEABLE), dtype=np.int8)
    empty = np.fromiter((not v for v in values), dtype=np.bool_, count=len(values))
    verdicts[empty] = Verdict.EMPTY
    nonempty = np.flatnonzero(~empty)
    candidates: list[bytes] = [values[p] or b"" for p in nonempty.tolist()]
    visits, parsed = parse_objects(candidates, VISIT)
    positions = nonempty[parsed]
    missing = missing_fields(visits, required_fields)
    complete = pc.equal(missing, "").to_numpy(zero_copy_only=False)
    verdicts[positions] = np.where(complete, int(Verdict.VALID), int(Verdict.INVALID))
    return Classified(verdicts, visits, positions, missing)
