"""Parse Kafka records into visits and say, per record, why it cannot be one (the dead-letter reason).

Parsing stays in Spark (executors); the result is one DataFrame with a ``reason`` column that is null for
a good visit, so one ``toArrow()`` per batch serves both tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from streamwatch_visits_writer.schema import (
    DEAD_LETTER_TABLE,
    REASON_EMPTY,
    REASON_MISSING,
    REASON_UNPARSEABLE,
    VISIT,
    VISITS_TABLE,
    visit_spark_schema,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_CORRUPT = "_corrupt_record"


def classify(batch_df: DataFrame, batch_id: int, required_fields: Sequence[str]) -> DataFrame:
    """Kafka rows (``key, value, topic, partition, offset, timestamp``) → visit columns, source columns,
    ``key``/``value``/``topic`` and ``reason``/``detail`` (null when the record is a good visit)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField

    schema = visit_spark_schema()
    schema.add(StructField(_CORRUPT, StringType()))
    text = F.col("value").cast("string")
    parsed = batch_df.select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        F.lit(batch_id).cast("long").alias("batch_id"),
        F.from_json(text, schema, {"columnNameOfCorruptRecord": _CORRUPT}).alias("v"),
    )
    missing = F.concat_ws(",", *[_missing(name) for name in required_fields])
    reason = (
        F.when(F.col("value").isNull() | (F.length("value") == 0), F.lit(REASON_EMPTY))
        .when(F.col("v").isNull() | F.col(f"v.{_CORRUPT}").isNotNull(), F.lit(REASON_UNPARSEABLE))
        .when(missing != "", F.lit(REASON_MISSING))
    )
    detail = (
        F.when(reason == REASON_MISSING, missing)
        .when(reason == REASON_UNPARSEABLE, F.lit("not a JSON object of the visit schema"))
        .when(reason == REASON_EMPTY, F.lit("null or empty Kafka value"))
    )
    visit_columns = [F.col(f"v.{name}").alias(name) for name in VISIT.names]
    return parsed.select(
        *visit_columns,
        "partition",
        "offset",
        "kafka_timestamp",
        "batch_id",
        "key",
        "value",
        "topic",
        reason.alias("reason"),
        detail.alias("detail"),
    )


def _missing(name: str) -> Column:
    from pyspark.sql import functions as F

    value = F.col(f"v.{name}")
    # An empty string is as useless downstream as a null.
    empty = value.isNull() | (F.trim(value.cast("string")) == "")
    return F.when(empty, F.lit(name))


def split(classified: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The collected batch → (visits rows, dead-letter rows), each cast to its table's schema."""
    bad = pc.is_valid(classified["reason"])
    visits = classified.filter(pc.invert(bad)).select(VISITS_TABLE.names).cast(VISITS_TABLE)
    dead = classified.filter(bad).select(DEAD_LETTER_TABLE.names).cast(DEAD_LETTER_TABLE)
    return visits, dead
