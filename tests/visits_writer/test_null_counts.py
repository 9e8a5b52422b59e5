"""The opt-in ``DataFrame.observe`` null counts agree with the shared Arrow rule of
``streamwatch_common.visit_record`` on the same bytes (local Spark, a batch DataFrame), except on the
records that Spark's ``from_json`` reads differently, which ``null_counts``' docstring lists: each of
those is pinned here."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING

import pytest
from visits_writer.records import encode, visit

from streamwatch_common.visit_record import (
    DEFAULT_REQUIRED_FIELDS,
    classify_values,
    null_or_empty,
    spark_null_or_empty,
)
from streamwatch_visits_writer.null_counts import QUALITY_OBSERVATION, null_counts

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
    observation = Observation(QUALITY_OBSERVATION)
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


def _nested(n: int, section: str, fields: dict[str, object], **top: object) -> bytes:
    """A visit with ``top`` replacing top-level fields and ``fields`` fields of one context section."""
    record = visit(n, **top)
    record["context"][section] = {**record["context"][section], **fields}
    return encode(record)


def _bytes(n: int, old: bytes, new: bytes, **top: object) -> bytes:
    """A visit's JSON with ``old`` replaced by ``new`` bytes."""
    value = encode(visit(n, **top))
    assert old in value
    return value.replace(old, new)


# (case, value, required fields the shared rule counts, those the null counts count): the records of the
# module docstring of streamwatch_visits_writer.null_counts, one per kind, each with a required field
# null or blank so that a difference shows; then three on which both agree.
FROM_JSON_DIFFERS: list[tuple[str, bytes, set[str], set[str]]] = [
    # Counted by the rule, not by from_json: a blank string in a non-string field.
    ("event_time empty", encode(visit(1, event_time="")), {"event_time"}, set()),
    ("event_time blank", encode(visit(2, event_time=" ")), {"event_time"}, set()),
    ("keep_private blank", encode(visit(3, keep_private=" ", page=None)), {"page"}, set()),
    ("nested timestamp blank", _nested(4, "user", {"connected_since": ""}, page=" "), {"page"}, set()),
    # Counted by from_json, not by the rule: records the rule finds unparseable.
    ("number for a string", encode(visit(5, user_id=5, page=None)), set(), {"page"}),
    ("boolean for a string", encode(visit(6, user_id=True, page=None)), set(), {"page"}),
    ("array for a string", encode(visit(7, page=["a"], user_id=None)), set(), {"user_id"}),
    ("object for a string", encode(visit(8, page={"a": 1}, user_id=" ")), set(), {"user_id"}),
    ("number for a nested string", _nested(9, "technical", {"browser": 131}, page=""), set(), {"page"}),
    ("number for a timestamp", encode(visit(10, event_time=1_700_000_000, page="")), set(), {"page"}),
    ("repeated key, the last null", _bytes(11, b'"context":', b'"page":null,"context":'), set(), {"page"}),
    (
        "repeated key, the last blank",
        _bytes(12, b'"context":', b'"user_id":" ","context":'),
        set(),
        {"user_id"},
    ),
    ("two objects", encode(visit(14, page=None)) + b" " + encode(visit(15)), set(), {"page"}),
    ("text after the object", encode(visit(16, page=None)) + b" trailing", set(), {"page"}),
    ("single quotes", b"{'visit_id':'v-17'}", set(), {"event_time", "user_id", "page"}),
    ("not UTF-8 in a key", _bytes(18, b'"user_id"', b'"user_\xffid"'), set(), {"user_id"}),
    ("not UTF-8 in a value", _bytes(19, b':"user_5"', b':"user_\xff5"', page=None), set(), {"page"}),
    # Both agree.
    ("repeated key, the first null", _bytes(13, b'"page":', b'"page":null,"page":'), set(), set()),
    ("page null", encode(visit(20, page=None)), {"page"}, {"page"}),
    ("complete", encode(visit(21)), set(), set()),
]


def test_null_counts_differ_from_the_rule_exactly_on_the_documented_records(spark: SparkSession) -> None:
    required = list(DEFAULT_REQUIRED_FIELDS)
    frame = spark.createDataFrame([(c, v) for c, v, *_ in FROM_JSON_DIFFERS], "case string, value binary")
    counted = {row["case"]: row for row in frame.groupBy("case").agg(*null_counts(required)).collect()}
    got = {
        case: (
            {f for f, n in expected_counts([value], required).items() if n},
            {f for f in required if counted[case][f]},
        )
        for case, value, *_ in FROM_JSON_DIFFERS
    }
    assert got == {case: (rule, spark_says) for case, _value, rule, spark_says in FROM_JSON_DIFFERS}
