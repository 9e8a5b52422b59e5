"""Classify Kafka records into visits rows and dead-letter rows with the shared rule, on either connector.

Every record is judged by :func:`streamwatch_common.visit_record.classify_values`, the rule the observer
applies too, so the dead-letter table and the observer's counts agree on every record, whichever connector
runs. :func:`classified_rows` turns its verdicts into one table of rows (:data:`CLASSIFIED_TABLE`); the
``python`` path collects the raw Kafka columns and splits that table in two (:func:`classify_arrow`), the
``jvm`` path runs the same function on Spark's Python workers (:func:`classify_in_spark`) and keeps the
rows in Spark for delta-spark. Spark's ``from_json`` followed by ``toArrow()`` ran at ~5k rows/s and judged
some records differently; nothing here uses it.

Usage::

    visits, dead = classify_arrow(batch_df.select(*KAFKA_COLUMNS).toArrow(), batch_id, required)  # python
    classified = classify_in_spark(batch_df, batch_id, required)  # jvm: reason IS NULL for a visit
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamwatch_common.visit_record import VISIT, Verdict, classify_values
from streamwatch_visits_writer.schema import (
    CLASSIFIED_TABLE,
    DEAD_LETTER_TABLE,
    DETAIL_EMPTY,
    DETAIL_UNPARSEABLE,
    REASON_EMPTY,
    REASON_MISSING,
    REASON_UNPARSEABLE,
    VISITS_TABLE,
    classified_spark_schema,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# The Kafka DataFrame's columns that are classified: nothing is parsed by Spark itself.
KAFKA_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp")

# Dead-letter reason and fixed detail per verdict (absent: not a dead letter, or a detail naming fields).
_REASONS = {
    Verdict.EMPTY: REASON_EMPTY,
    Verdict.UNPARSEABLE: REASON_UNPARSEABLE,
    Verdict.INVALID: REASON_MISSING,
}
_DETAILS = {Verdict.EMPTY: DETAIL_EMPTY, Verdict.UNPARSEABLE: DETAIL_UNPARSEABLE}


def _by_verdict(texts: dict[Verdict, str]) -> pa.Array:
    """The texts as an array indexed by verdict value, for ``take`` with the verdict codes."""
    return pa.array([texts.get(v) for v in Verdict], pa.string())


def classified_rows(
    kafka: pa.Table | pa.RecordBatch, batch_id: int, required_fields: Sequence[str]
) -> pa.Table:
    """Kafka rows (:data:`KAFKA_COLUMNS`) → one row per record, in the same order, with
    :data:`CLASSIFIED_TABLE`'s columns: the visit's fields where the record parses (null otherwise), where
    the record came from, and its dead-letter ``reason`` and ``detail`` (both null for a good visit)."""
    rows = kafka.num_rows
    result = classify_values(kafka["value"].to_pylist(), required_fields)
    codes = result.verdicts.astype(np.int64)
    complete = codes[result.positions] == Verdict.VALID

    visits = result.visits
    if len(result.positions) < rows:  # some records did not parse: their visit columns are null
        row_of = np.full(rows, -1, dtype=np.int64)
        row_of[result.positions] = np.arange(len(result.positions))
        visits = visits.take(pa.array(row_of, mask=row_of < 0))

    # Detail per record: constants by verdict, the missing fields' names for invalid visits.
    constants = _by_verdict(_DETAILS)
    pick = codes.copy()
    pick[result.positions[~complete]] = len(constants) + np.flatnonzero(~complete)
    details = pc.take(pa.concat_arrays([constants, result.missing]), pa.array(pick))
    columns = {
        **{name: visits[name] for name in VISIT.names},
        "partition": kafka["partition"],
        "offset": kafka["offset"],
        "kafka_timestamp": kafka["timestamp"],
        "batch_id": pa.array(np.full(rows, batch_id, dtype=np.int64)),
        "key": kafka["key"],
        "value": kafka["value"],
        "topic": kafka["topic"],
        "reason": pc.take(_by_verdict(_REASONS), pa.array(codes)),
        "detail": details,
    }
    return pa.table(columns).select(CLASSIFIED_TABLE.names).cast(CLASSIFIED_TABLE)


def classify_arrow(
    kafka: pa.Table, batch_id: int, required_fields: Sequence[str]
) -> tuple[pa.Table, pa.Table]:
    """Collected Kafka rows (:data:`KAFKA_COLUMNS`) → (visits rows, dead-letter rows), each with its
    table's schema and in offset order; every record lands in exactly one of them."""
    rows = classified_rows(kafka, batch_id, required_fields)
    good = pc.is_null(rows["reason"])
    visits = rows.select(VISITS_TABLE.names).filter(good).cast(VISITS_TABLE)
    dead = rows.select(DEAD_LETTER_TABLE.names).filter(pc.invert(good)).cast(DEAD_LETTER_TABLE)
    return visits, dead


def classify_in_spark(batch_df: DataFrame, batch_id: int, required_fields: Sequence[str]) -> DataFrame:
    """The Kafka DataFrame classified inside Spark: :func:`classified_rows` on every Arrow batch, run by
    the Python workers (``mapInArrow``); one row per record, with :data:`CLASSIFIED_TABLE`'s columns."""
    classify = functools.partial(_classify_batches, batch_id=batch_id, required_fields=tuple(required_fields))
    return batch_df.select(*KAFKA_COLUMNS).mapInArrow(classify, classified_spark_schema())


def _classify_batches(
    batches: Iterator[pa.RecordBatch], batch_id: int, required_fields: Sequence[str]
) -> Iterator[pa.RecordBatch]:
    # Pickled to Spark's Python workers as a partial of this module-level function, which they import from
    # the installed package.
    for batch in batches:
        yield from classified_rows(batch, batch_id, required_fields).to_batches()
