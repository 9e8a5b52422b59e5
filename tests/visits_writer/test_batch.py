"""The foreachBatch writer on static DataFrames: classification, dead letters, exactly-once per batch id."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from deltalake import DeltaTable
from visits_writer.records import encode, visit

from streamwatch_visits_writer.batch import VisitsBatchWriter
from streamwatch_visits_writer.tables import create_tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

pytestmark = pytest.mark.spark

KAFKA_SCHEMA = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"


def kafka_rows(
    spark: SparkSession, values: list[bytes | None], partition: int = 0, first_offset: int = 0
) -> DataFrame:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(b"k", value, "visits", partition, first_offset + i, now) for i, value in enumerate(values)]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def tables(tmp: Path) -> tuple[str, str]:
    visits, dead = str(tmp / "visits"), str(tmp / "dead")
    create_tables(visits, dead)
    return visits, dead


def test_good_bad_and_missing_records_land_in_the_right_table(spark: SparkSession, tmp_path: Path) -> None:
    visits_path, dead_path = tables(tmp_path)
    values: list[bytes | None] = [encode(visit(n)) for n in range(5)]
    values += [
        encode(visit(5, user_id=None)),  # missing one required field
        encode(visit(6, page="", event_time=None)),  # empty string counts as missing
        b'{"visit_id":"v-7","event_ti',  # cut short
        encode(visit(8, event_time="yesterday")),  # wrong type
        b"",
        None,
    ]
    writer = VisitsBatchWriter(visits_path, dead_path, ["event_time", "user_id", "page"])
    writer.bind("q1")
    writer(kafka_rows(spark, values), 0)

    written = DeltaTable(visits_path).to_pyarrow_table().to_pylist()
    dead = {r["offset"]: r for r in DeltaTable(dead_path).to_pyarrow_table().to_pylist()}
    assert sorted(r["offset"] for r in written) == [0, 1, 2, 3, 4]
    assert {r["visit_id"] for r in written} == {f"v-{n}" for n in range(5)}
    first = next(r for r in written if r["offset"] == 0)
    assert first["event_time"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert first["context"]["technical"]["browser"] == "Firefox"
    assert first["partition"] == 0 and first["batch_id"] == 0
    assert {
        o: (r["reason"], r["detail"]) for o, r in dead.items() if r["reason"] == "missing_required_field"
    } == {
        5: ("missing_required_field", "user_id"),
        6: ("missing_required_field", "event_time,page"),
    }
    assert dead[7]["reason"] == "unparseable" and dead[7]["value"] == b'{"visit_id":"v-7","event_ti'
    assert dead[8]["reason"] == "unparseable"
    assert dead[9]["reason"] == dead[10]["reason"] == "empty_value"
    assert len(written) + len(dead) == len(values)


def test_a_replayed_batch_is_not_appended_twice(spark: SparkSession, tmp_path: Path) -> None:
    visits_path, dead_path = tables(tmp_path)
    writer = VisitsBatchWriter(visits_path, dead_path, ["user_id"])
    writer.bind("q2")
    batch0 = kafka_rows(spark, [encode(visit(0)), b"not json"], first_offset=0)
    batch1 = kafka_rows(spark, [encode(visit(1)), b"{", encode(visit(2))], first_offset=2)
    writer(batch0, 0)
    writer(batch1, 1)
    versions = (DeltaTable(visits_path).version(), DeltaTable(dead_path).version())
    # The restart case: Spark replays the last batch, and a fresh writer instance sees it.
    again = VisitsBatchWriter(visits_path, dead_path, ["user_id"])
    again.bind("q2")
    again(batch1, 1)
    again(batch0, 0)
    assert (DeltaTable(visits_path).version(), DeltaTable(dead_path).version()) == versions
    offsets = [r["offset"] for r in DeltaTable(visits_path).to_pyarrow_table().to_pylist()]
    dead_offsets = [r["offset"] for r in DeltaTable(dead_path).to_pyarrow_table().to_pylist()]
    assert sorted(offsets) == [0, 2, 4] and sorted(dead_offsets) == [1, 3]
    # Another query (a fresh checkpoint) has its own transaction sequence: batch 0 is new for it.
    other = VisitsBatchWriter(visits_path, dead_path, ["user_id"])
    other.bind("q3")
    other(kafka_rows(spark, [encode(visit(9))], first_offset=5), 0)
    assert len(DeltaTable(visits_path).to_pyarrow_table()) == 4


def test_simulated_latency_sleeps_inside_the_batch(spark: SparkSession, tmp_path: Path) -> None:
    visits_path, dead_path = tables(tmp_path)
    slept: list[float] = []
    writer = VisitsBatchWriter(
        visits_path, dead_path, ["user_id"], simulated_latency_seconds=1.5, sleep=slept.append
    )
    writer.bind("q4")
    writer(kafka_rows(spark, [encode(visit(0))]), 0)
    assert slept == [1.5]
