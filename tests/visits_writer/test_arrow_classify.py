"""The Arrow parser of the visits writer on collected Kafka rows: every record in exactly one table, with
the same reasons as the Spark path, in offset order, whatever shape the bad records have."""

from __future__ import annotations

from visits_writer.records import encode, kafka_table, visit

from streamwatch_visits_writer.arrow_classify import classify_arrow
from streamwatch_visits_writer.schema import DEAD_LETTER_TABLE, VISITS_TABLE

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
