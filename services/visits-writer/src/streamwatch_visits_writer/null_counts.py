"""The opt-in null counts of ``DataFrame.observe`` (``VISITS_WRITER_OBSERVE_NULL_COUNTS``, either connector).

``DataFrame.observe`` aggregates inside Spark's plan while the query runs, so what it counts must be Spark
columns: the records are parsed here with Spark's ``from_json``, and the blank rule is its Spark form
(:func:`streamwatch_common.visit_record.spark_null_or_empty`). The tables' verdicts do not come from here:
both connectors judge records with the shared rule (:mod:`streamwatch_visits_writer.arrow_classify`).

``from_json`` reads some records differently from the shared rule
(:func:`streamwatch_common.visit_record.classify_values`), so on these records the counts differ from
the rule's own (the observer's ``invalid_<field>``, the dead-letter table's details):

- **Counted by the rule, not here** — Spark rejects the whole record when a non-string field holds a
  blank string, where the rule reads that field as null and the rest as they are: ``"event_time": ""``
  or ``" "`` (the rule counts ``event_time``), ``"keep_private": " "``, a blank nested timestamp
  (``context.user.connected_since``). None of the record's missing fields is counted here.
- **Counted here, not by the rule** — Spark reads as a visit a record the rule finds unparseable, and
  counts its null or blank required fields:

  - a number, boolean, array or object where the schema has a string (Spark keeps its JSON text:
    ``"user_id": 5`` is ``"5"``), top-level or nested;
  - a number where the schema has a timestamp (seconds since the epoch to Spark);
  - a key given twice (Spark keeps the last value: ``"user_id": "a", "user_id": null`` counts
    ``user_id``);
  - more after the first object, a second object or any text (Spark reads the first object only);
  - single-quoted names and strings (``{'visit_id': 'v1'}``: every required field absent);
  - bytes that are not UTF-8 (Spark reads them as U+FFFD: a value keeps the replacement character, a
    key no longer names its field, so that field counts as absent).

Every one of these is pinned by ``tests/visits_writer/test_null_counts.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from streamwatch_common.visit_record import VISIT, spark_null_or_empty
from streamwatch_visits_writer.schema import visit_spark_schema

if TYPE_CHECKING:
    from pyspark.sql import Column

_CORRUPT = "_corrupt_record"
# The DataFrame.observe name of the per-batch null counts (VISITS_WRITER_OBSERVE_NULL_COUNTS).
QUALITY_OBSERVATION = "visits_quality"


def null_counts(required_fields: Sequence[str]) -> list[Column]:
    """Aggregates for ``DataFrame.observe`` over Kafka rows: per required field, the records that parse
    as a visit and hold the field null, absent or blank (the rule of
    :func:`streamwatch_common.visit_record.spark_null_or_empty`), aliased by the field's name.

    Unparseable and empty values are not counted, as the observer's ``invalid_<field>`` leaves them out.
    Parsing is Spark's ``from_json``: the records listed in the module docstring count differently.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField

    schema = visit_spark_schema()
    schema.add(StructField(_CORRUPT, StringType()))
    visit = F.from_json(F.col("value").cast("string"), schema, {"columnNameOfCorruptRecord": _CORRUPT})
    parsed = (
        F.col("value").isNotNull()
        & (F.length("value") > 0)
        & visit.isNotNull()
        & visit.getField(_CORRUPT).isNull()
    )
    return [
        F.count(F.when(parsed & spark_null_or_empty(_field(visit, name)), F.lit(1))).alias(name)
        for name in required_fields
    ]


def _field(visit: Column, dotted: str) -> Column:
    """The (possibly nested) field of the parsed visit; null for a name outside the schema, which the
    shared rule counts as missing in every record."""
    from pyspark.sql import functions as F

    column, kind = visit, pa.struct(list(VISIT))
    for name in dotted.split("."):
        if not pa.types.is_struct(kind) or kind.get_field_index(name) < 0:
            return F.lit(None).cast("string")
        column, kind = column.getField(name), kind.field(name).type
    return column
