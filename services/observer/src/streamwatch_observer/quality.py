"""Data quality of one window of raw record values, judged by the shared visit record rule.

Which record is unparseable and which is invalid is decided by
:func:`streamwatch_common.visit_record.classify_values`, the same call the visits writer makes for its
dead-letter table, so both services agree on every record. This module only counts: per window, the
records, the unparseable ones (an empty Kafka value included), the invalid ones, the null-or-empty values
per field and the duplicate ids.

Usage::

    meter = QualityMeter(["event_time", "user_id", "page"], id_field="visit_id")
    meter.measure([b'{"visit_id": "v1", "user_id": "u1"}', b"not json"]).unparseable  # 1
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from streamwatch_common.visit_record import (
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
    rows: pa.Table | pd.DataFrame | None = field(default=None, repr=False)

    def invalid(self, name: str) -> int:
        """Null-or-empty count of a field; a field outside the schema is null in every parsed record."""
        return self.null_counts.get(name, self.records - self.unparseable)


def duplicate_count(ids: pa.ChunkedArray | pa.Array) -> int:
    """Ids seen before in the same sequence: the first occurrence is not a duplicate, and a null or blank
    id is no id at all."""
    present = pc.filter(ids, pc.invert(null_or_empty(ids)))
    return len(present) - int(pc.count_distinct(present, mode="only_valid").as_py())


class QualityMeter:
    """Computes :class:`WindowQuality` for windows of raw values with fixed required and id fields."""

    def __init__(self, required: list[str], id_field: str, keep_rows: bool = False) -> None:
        self.required = tuple(required)
        self.id_field = id_field
        self.keep_rows = keep_rows

    def measure(self, values: list[bytes]) -> WindowQuality:
        """Quality of one window's values (in offset order)."""
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
