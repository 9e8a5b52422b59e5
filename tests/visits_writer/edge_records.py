"""Edge records of the visit record rule, for the tests that run them through the visits writer.

Each is a Kafka value that some JSON reader might judge differently from the shared rule
(:func:`streamwatch_common.visit_record.classify_values`): the 15 of issue 22 (point 6), then every other
kind of record on which Spark's ``from_json`` (the jvm path's parser until then, and still the parser of the
opt-in null counts) was found to differ. What each one should be is the shared rule's business; the tests
ask it (and ``tests/common/test_visit_record_agreement.py`` pins its verdicts).
"""

from __future__ import annotations

import json

from visits_writer.records import encode, visit


def _nested(n: int, section: str, **fields: object) -> bytes:
    record = visit(n)
    record["context"][section] = {**record["context"][section], **fields}
    return encode(record)


def _without(n: int, name: str) -> bytes:
    record = visit(n)
    del record[name]
    return encode(record)


# (case, Kafka value): names are unique; values are distinct so each can be told apart in the tables.
EDGE_RECORDS: list[tuple[str, bytes | None]] = [
    # The 15.
    ("blank event_time", encode(visit(1, event_time=" "))),
    ("number for user_id", encode(visit(2, user_id=5))),
    (
        "repeated key",
        b'{"visit_id":"v-3","user_id":"a","user_id":"b","page":"p","event_time":"2026-01-01T00:00:00Z"}',
    ),
    ("two objects in one value", encode(visit(4)) + b" " + encode(visit(5))),
    ("not UTF-8", encode(visit(6)).replace(b"user_", b"user_\xff")),
    ("blank keep_private", encode(visit(7, keep_private=" "))),
    ("empty value", b""),
    ("null value", None),
    ("not JSON", b"{visit_id: v-9}"),
    ("JSON array", b'[{"visit_id":"v-10"}]'),
    ("missing required field", _without(11, "page")),
    ("blank required field", encode(visit(12, page=" \t "))),
    ("nested field missing", encode(visit(13, context={"referral": "Google Search"}))),
    ("extra unknown field", encode(visit(14, extra=[1, {"a": None}]))),
    ("valid visit", encode(visit(15))),
    # More records on which Spark's from_json differs from the shared rule.
    ("empty event_time", encode(visit(16, event_time=""))),
    ("blank nested timestamp", _nested(17, "user", connected_since="")),
    ("number for event_time", encode(visit(18, event_time=1_700_000_000))),
    ("bool for user_id", encode(visit(19, user_id=True))),
    ("array for user_id", encode(visit(20, user_id=["a"]))),
    ("object for page", encode(visit(21, page={"a": 1}))),
    ("number for a nested string", _nested(22, "technical", browser=131)),
    ("number for user_id, page null", encode(visit(23, user_id=5, page=None))),
    ("repeated key, last null", b'{"visit_id":"v-24","user_id":"a","user_id":null,"page":"p"}'),
    ("text after the object", encode(visit(25)) + b" trailing"),
    ("a bad object, then a good one", b'{"visit_id":"v-26"} ' + encode(visit(27))),
    ("not UTF-8 in a value", encode(visit(28)).replace(b"article_", b"article_\xff")),
    ("single quotes", b"{'visit_id':'v-29','user_id':'u','page':'p'}"),
    # Records both readers judge alike, around them.
    ("wrong type for keep_private", encode(visit(30, keep_private="yes"))),
    ("top-level null", b"null"),
    ("cut short", encode(visit(31))[:-7]),
    ("required fields absent", json.dumps({"visit_id": "v-32"}).encode()),
    ("context null", encode(visit(33, context=None))),
    ("non-ASCII unescaped", json.dumps(visit(34, user_id="Zoë 🙂"), ensure_ascii=False).encode()),
]
