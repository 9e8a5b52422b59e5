"""The opt-in ``DataFrame.observe`` null counts agree with the shared Arrow rule of
``streamwatch_common.visit_record`` on the same bytes (local Spark, a batch DataFrame)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from visits_writer.records import encode, kafka_table, visit

from streamwatch_common.visit_record import (
    DEFAULT_REQUIRED_FIELDS,
    classify_values,
    null_or_empty,
    spark_null_or_empty,
)
from streamwatch_visits_writer.arrow_classify import classify_arrow
from streamwatch_visits_writer.classify import classify, null_counts

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark

# Every code point up to U+3000 that either rule might call white space, and a few that neither does.
CANDIDATES = [chr(c) for c in (*range(0x21), 0x7F, 0x85, 0xA0, 0x1680, *range(0x2000, 0x2030), 0x205F)]
CANDIDATES += [chr(0x3000), chr(0xFEFF), "x", " x ", ""]


def expected_counts(values: list[bytes | None], required: list[str]) -> dict[str, int]:
    """Per required field, the parsed records in which the Arrow rule finds it null, absent or blank."""
    missing = classify_values(values, required).missing.to_pylist()
    found = Counter(name for row in missing for name in row.split(",") if name)
    return {name: found[name] for name in required}


def observed(spark: SparkSession, values: list[bytes | None], required: list[str]) -> dict[str, int]:
    from pyspark.sql import Observation

    frame = spark.createDataFrame([(v,) for v in values], "value binary")
    observation = Observation("visits_quality")
    frame.observe(observation, *null_counts(required)).collect()
    return {str(k): int(v) for k, v in observation.get.items()}


def test_blank_means_the_same_in_spark_and_arrow(spark: SparkSession) -> None:
    import pyarrow as pa
    from pyspark.sql import functions as F

    arrow = null_or_empty(pa.array([*CANDIDATES, None], pa.string())).to_pylist()
    frame = spark.createDataFrame([(c,) for c in [*CANDIDATES, None]], "s string")
    rows = frame.select(spark_null_or_empty(F.col("s")).alias("blank")).collect()
    spark_says = [row["blank"] for row in rows]
    differ = {
        hex(ord(c)) if len(c) == 1 else c: (a, s)
        for c, a, s in zip(CANDIDATES, arrow, spark_says, strict=False)
        if a != s
    }
    assert not differ, f"(arrow, spark) for: {differ}"
    assert arrow.count(True) > 20, "the candidates hold white space, so an agreement means something"


def test_observed_null_counts_equal_the_arrow_rule_per_required_field(spark: SparkSession) -> None:
    absent = visit(9)
    del absent["page"]
    values: list[bytes | None] = [
        encode(visit(1)),
        encode(visit(2, page=None)),
        encode(visit(3, page="  ")),
        encode(visit(4, user_id="\t\u00a0")),
        encode(visit(5, user_id="\x1c")),
        encode(visit(6, page="\u200b")),  # a zero-width space is not white space: not blank
        encode(visit(7, event_time=None, user_id=None)),
        encode(absent),
        b"not json",
        encode(visit(8, page=None))[:-3],  # cut short: unparseable, never counted
        b"",
        None,
        json.dumps([1, 2]).encode(),
    ]
    required = list(DEFAULT_REQUIRED_FIELDS)
    expected = expected_counts(values, required)
    assert expected == {"event_time": 1, "user_id": 3, "page": 3}, "the cases cover every field"
    assert observed(spark, values, required) == expected


def test_nested_fields_and_names_outside_the_schema(spark: SparkSession) -> None:
    record = visit(1)
    record["context"]["user"]["ip"] = " "
    values: list[bytes | None] = [encode(record), encode(visit(2)), b"{"]
    required = ["context.user.ip", "context.nope", "nope"]
    expected = expected_counts(values, required)
    assert expected == {"context.user.ip": 1, "context.nope": 2, "nope": 2}
    assert observed(spark, values, required) == expected


def test_the_jvm_paths_missing_fields_follow_the_same_rule(spark: SparkSession) -> None:
    """The opt-in JVM path's dead-letter detail (Spark's from_json, then the Spark form of the rule)
    names the same missing fields as the Arrow path for the same blank and null values."""
    values: list[bytes | None] = [
        encode(visit(1)),
        encode(visit(2, page="  ")),
        encode(visit(3, user_id="\t\u00a0", page=None)),
        encode(visit(4, user_id="\x1c")),
        encode(visit(5, page="\u200b")),
    ]
    required = [*DEFAULT_REQUIRED_FIELDS, "context.user.ip", "nope"]
    when = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(b"k", v, "visits", 0, offset, when) for offset, v in enumerate(values)]
    frame = spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    )
    jvm = {r["offset"]: r["detail"] for r in classify(frame, 0, required).collect()}
    _visits, dead = classify_arrow(kafka_table(values), 0, required)
    arrow = dict(zip(dead["offset"].to_pylist(), dead["detail"].to_pylist(), strict=True))
    assert (
        jvm
        == arrow
        == {
            0: "nope",
            1: "page,nope",
            2: "user_id,page,nope",
            3: "user_id,nope",
            4: "nope",
        }
    )
