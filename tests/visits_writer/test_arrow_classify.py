"""The visits writer's classification on Kafka rows: every record in exactly one table, in offset order,
whatever shape the bad records have; collected (python path) or inside Spark (jvm path), the same rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow.compute as pc
import pytest
from visits_writer.edge_records import EDGE_RECORDS
from visits_writer.records import encode, kafka_table, visit

from streamwatch_visits_writer.arrow_classify import classify_arrow, classify_in_spark
from streamwatch_visits_writer.schema import CLASSIFIED_TABLE, DEAD_LETTER_TABLE, VISITS_TABLE

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REQUIRED = ["event_time", "user_id", "page"]


def test_odd_values_are_dead_letters_and_padded_objects_are_visits() -> None:
    values: list[bytes | None] = [
        b"null",  # a top-level null would crash pyarrow's reader: it must never reach it
        b"[1]",
        b"42",
        b'{"visit_id":"a"} {"visit_id":"b"}',  # two objects in one record
        b' {"visit_id":"p","user_id":"u",\n"page":"x","event_time":"2026-01-01T00:00:00Z"}\r\n',
        encode(visit(1, user_id=5)),  # a number where a string belongs
        encode(visit(2, context={"user": "not an object"})),  # nested type error
        b"{}",
        encode(visit(3)),
    ]
    visits, dead = classify_arrow(kafka_table(values, partition=1, first_offset=100), 4, REQUIRED)
    assert visits.schema == VISITS_TABLE and dead.schema == DEAD_LETTER_TABLE
    assert visits.column("offset").to_pylist() == [104, 108]
    assert visits.column("visit_id").to_pylist() == ["p", "v-3"]
    assert visits.column("batch_id").to_pylist() == [4, 4]
    reasons = dict(zip(dead.column("offset").to_pylist(), dead.column("reason").to_pylist(), strict=True))
    assert reasons == {
        100: "unparseable",
        101: "unparseable",
        102: "unparseable",
        103: "unparseable",
        105: "unparseable",
        106: "unparseable",
        107: "missing_required_field",
    }
    assert dead.column("detail").to_pylist()[-1] == "event_time,user_id,page"
    assert dead.column("value").to_pylist()[0] == b"null"


def test_one_wrong_type_in_a_large_block_costs_only_that_record() -> None:
    values: list[bytes | None] = [encode(visit(n)) for n in range(2000)]
    values[1234] = encode(visit(1234, keep_private="yes"))
    values[77] = None
    values[1500] = encode(visit(1500, page=" "))
    visits, dead = classify_arrow(kafka_table(values, partition=1, first_offset=100), 0, REQUIRED)
    assert visits.num_rows == 1997
    offsets = visits.column("offset").to_pylist()
    assert offsets == sorted(offsets)
    assert visits.column("visit_id").to_pylist()[1500 - 2] == "v-1501"  # rows stay with their offsets
    assert dead.to_pydict()["reason"] == ["empty_value", "unparseable", "missing_required_field"]
    assert dead.to_pydict()["offset"] == [177, 1334, 1600]
    assert dead.to_pydict()["detail"][2] == "page"


@pytest.mark.spark
def test_inside_spark_the_same_rows_as_collected(spark: SparkSession) -> None:
    """The jvm path's mapInArrow runs the same classification on the Python workers: over partitions of
    every edge record, it gives each record the row the collected path gives it."""
    values = [value for _case, value in EDGE_RECORDS] + [encode(visit(n)) for n in range(100, 120)]
    when = datetime(2026, 1, 1, tzinfo=UTC)
    frame = spark.createDataFrame(
        [(b"k", value, "visits", 1, offset, when) for offset, value in enumerate(values)],
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp",
    ).repartition(3)
    classified = classify_in_spark(frame, 7, REQUIRED).toArrow()
    assert classified.schema == CLASSIFIED_TABLE
    good = pc.is_null(classified["reason"])
    in_spark = (
        classified.select(VISITS_TABLE.names).filter(good).sort_by("offset"),
        classified.select(DEAD_LETTER_TABLE.names).filter(pc.invert(good)).sort_by("offset"),
    )
    visits, dead = classify_arrow(kafka_table(values, partition=1), 7, REQUIRED)
    assert in_spark[0].equals(visits) and in_spark[1].equals(dead)
    assert visits.num_rows > 20 and dead.num_rows > 20
