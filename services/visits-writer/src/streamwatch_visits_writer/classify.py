"""Parse Kafka records into visits inside Spark (``from_json``), for the opt-in JVM connector path.

The result is one DataFrame with a ``reason`` column that is null for a good visit. The default Python
path parses with Arrow instead (:mod:`streamwatch_visits_writer.arrow_classify`), with the same reasons;
it applies the shared rule of :mod:`streamwatch_common.visit_record` exactly, while Spark's ``from_json``
may differ on edge cases (a blank timestamp, a duplicate key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from streamwatch_common.visit_record import VISIT
from streamwatch_visits_writer.schema import (
    DETAIL_EMPTY,
    DETAIL_UNPARSEABLE,
    REASON_EMPTY,
    REASON_MISSING,
    REASON_UNPARSEABLE,
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
        .when(reason == REASON_UNPARSEABLE, F.lit(DETAIL_UNPARSEABLE))
        .when(reason == REASON_EMPTY, F.lit(DETAIL_EMPTY))
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
