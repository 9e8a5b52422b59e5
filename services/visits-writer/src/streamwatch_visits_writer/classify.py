"""Parse Kafka records into visits inside Spark (``from_json``), for the opt-in JVM connector path and the
opt-in null counts of ``DataFrame.observe`` (:func:`null_counts`, either path).

The result is one DataFrame with a ``reason`` column that is null for a good visit. The default Python
path parses with Arrow instead (:mod:`streamwatch_visits_writer.arrow_classify`), with the same reasons;
it applies the shared rule of :mod:`streamwatch_common.visit_record` exactly, while Spark's ``from_json``
may differ on edge cases (a blank timestamp, a duplicate key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from streamwatch_common.visit_record import VISIT, spark_null_or_empty
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
# The DataFrame.observe name of the per-batch null counts (VISITS_WRITER_OBSERVE_NULL_COUNTS).
QUALITY_OBSERVATION = "visits_quality"


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

    # A blank string is as useless downstream as a null: the shared rule, in its Spark form.
    return F.when(spark_null_or_empty(_field(F.col("v"), name)), F.lit(name))


def null_counts(required_fields: Sequence[str]) -> list[Column]:
    """Aggregates for ``DataFrame.observe`` over Kafka rows: per required field, the records that parse
    as a visit and hold the field null, absent or blank (the rule of
    :func:`streamwatch_common.visit_record.spark_null_or_empty`), aliased by the field's name.

    Unparseable and empty values are not counted, as the observer's ``invalid_<field>`` leaves them out.
    Parsing is Spark's ``from_json`` as on the JVM path, so the edge cases named in the module docstring
    apply (a blank timestamp, for one, makes the whole record unparseable to Spark).
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
