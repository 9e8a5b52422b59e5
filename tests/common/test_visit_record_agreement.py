"""The visits writer and the observer judge every record the same way: each service's real classifier
entry point gets the same bytes, and each record gets the verdict this table expects in both."""

from __future__ import annotations

import json

import pytest
from visits_writer.records import encode, kafka_table, visit

from streamwatch_common.visit_record import DEFAULT_REQUIRED_FIELDS, ID_FIELD
from streamwatch_observer.quality import QualityMeter
from streamwatch_visits_writer.arrow_classify import classify_arrow

REQUIRED = list(DEFAULT_REQUIRED_FIELDS)
BIG = "x" * (1 << 20)

# The writer's dead-letter reason → the observer's count the same record lands in.
OBSERVER_VERDICT = {
    None: "valid",
    "missing_required_field": "invalid",
    "unparseable": "unparseable",
    "empty_value": "unparseable",  # the observer counts an empty Kafka value as unparseable
}


# The writer's fixed dead-letter detail of a reason, where the table leaves the detail out.
FIXED_DETAIL = {"unparseable": "not a JSON object of the visit schema"}


def expected_writer(reason: str | None, detail: str | None) -> tuple[str | None, str | None]:
    return reason, detail if detail is not None or reason is None else FIXED_DETAIL[reason]


def nested(n: int, section: str, **fields: object) -> bytes:
    record = visit(n)
    record["context"][section] = {**record["context"][section], **fields}
    return encode(record)


# (case, value, the writer's dead-letter reason or None for a visit, the writer's detail if not fixed)
CASES: list[tuple[str, bytes | None, str | None, str | None]] = [
    ("complete", encode(visit(1)), None, None),
    # Wrong types, required or optional, top-level or nested: the record does not fit the schema.
    ("event_time not a time", encode(visit(2, event_time="yesterday")), "unparseable", None),
    ("event_time a number", encode(visit(3, event_time=1_700_000_000)), "unparseable", None),
    ("keep_private not a bool", encode(visit(4, keep_private="yes")), "unparseable", None),
    ("keep_private a number", encode(visit(5, keep_private=1)), "unparseable", None),
    ("user_id a number", encode(visit(6, user_id=5)), "unparseable", None),
    ("user_id a bool", encode(visit(7, user_id=True)), "unparseable", None),
    ("page an object", encode(visit(8, page={"a": 1})), "unparseable", None),
    ("nested time not a time", nested(9, "user", connected_since="soon"), "unparseable", None),
    ("nested string a number", nested(10, "technical", browser=131), "unparseable", None),
    ("context a string", encode(visit(11, context="none")), "unparseable", None),
    # Nulls, absent and blank values.
    ("context null", encode(visit(12, context=None)), None, None),
    ("nested object null", encode(visit(13, context={"user": None, "technical": None})), None, None),
    ("nested leaf null", nested(14, "user", ip=None, connected_since=None), None, None),
    ("keep_private null", encode(visit(15, keep_private=None)), None, None),
    ("user_id null", encode(visit(16, user_id=None)), "missing_required_field", "user_id"),
    ("user_id empty", encode(visit(17, user_id="")), "missing_required_field", "user_id"),
    ("page blank", encode(visit(18, page=" \t ")), "missing_required_field", "page"),
    ("event_time empty", encode(visit(19, event_time="")), "missing_required_field", "event_time"),
    ("keep_private blank", encode(visit(20, keep_private=" ")), None, None),
    ("nested time blank", nested(21, "user", connected_since=""), None, None),
    (
        "required fields absent",
        json.dumps({"visit_id": "v-22"}).encode(),
        "missing_required_field",
        "event_time,user_id,page",
    ),
    # Text and bytes.
    ("non-ASCII", encode(visit(23, user_id="Zoë 🙂", page="記事.html")), None, None),
    ("non-ASCII unescaped", json.dumps(visit(24, user_id="Zoë 🙂"), ensure_ascii=False).encode(), None, None),
    ("not UTF-8", encode(visit(25)).replace(b"user_", b"user_\xff"), "unparseable", None),
    (
        "duplicate key",
        b'{"visit_id":"v-26","user_id":"a","user_id":"b","page":"p","event_time":null}',
        "unparseable",
        None,
    ),
    ("unknown field of any type", encode(visit(27, extra=[1, {"a": None}])), None, None),
    # Not one JSON object.
    ("top-level null", b"null", "unparseable", None),
    ("top-level array", b'[{"visit_id":"v-29"}]', "unparseable", None),
    ("top-level number", b"42", "unparseable", None),
    ("top-level string", b'"visit"', "unparseable", None),
    ("two objects", encode(visit(32)) + b" " + encode(visit(33)), "unparseable", None),
    ("truncated", encode(visit(34))[:-7], "unparseable", None),
    ("not JSON", b"{visit_id: v-35}", "unparseable", None),
    (
        "padded over lines",
        b' {"visit_id":"v-36",\n"user_id":"u","page":"p","event_time":"2026-01-01"}\r\n',
        None,
        None,
    ),
    ("empty bytes", b"", "empty_value", "null or empty Kafka value"),
    ("null value", None, "empty_value", "null or empty Kafka value"),
    # Size.
    ("1 MB page", encode(visit(39, page=BIG)), None, None),
    ("1 MB unknown field", encode(visit(40, notes=BIG)), None, None),
    ("1 MB truncated", encode(visit(41, page=BIG))[: len(BIG) // 2], "unparseable", None),
]


def writer_verdicts(values: list[bytes | None]) -> list[tuple[str | None, str | None]]:
    """Per value, the visits writer's (reason, detail); (None, None) for a row of the visits table."""
    visits, dead = classify_arrow(kafka_table(values), 0, REQUIRED)
    verdicts: list[tuple[str | None, str | None]] = [(None, None)] * len(values)
    for offset, reason, detail in zip(
        *dead.select(["offset", "reason", "detail"]).to_pydict().values(), strict=True
    ):
        verdicts[offset] = (reason, detail)
    assert visits.num_rows + dead.num_rows == len(values)
    return verdicts


def observer_verdict(value: bytes | None) -> str:
    """The observer's count that one record lands in, from a window of that record alone."""
    quality = QualityMeter(REQUIRED, ID_FIELD).measure([value or b""])  # the consumer passes b"" for null
    assert quality.records == 1
    if quality.unparseable:
        return "unparseable"
    return "invalid" if quality.invalid_records else "valid"


@pytest.mark.parametrize(("case", "value", "reason", "detail"), CASES, ids=[c[0] for c in CASES])
def test_each_record_gets_the_expected_verdict_in_both_services(
    case: str, value: bytes | None, reason: str | None, detail: str | None
) -> None:
    assert writer_verdicts([value]) == [expected_writer(reason, detail)]
    assert observer_verdict(value) == OBSERVER_VERDICT[reason]


def test_all_cases_in_one_block_among_good_records_get_the_same_verdicts() -> None:
    # Good records around each case make both services read blocks and split them down to the bad ones.
    values: list[bytes | None] = []
    expected: list[tuple[str | None, str | None]] = []
    for n, (_case, value, reason, detail) in enumerate(CASES):
        values += [encode(visit(1000 + 10 * n + k)) for k in range(7)] + [value]
        expected += [(None, None)] * 7 + [expected_writer(reason, detail)]
    assert writer_verdicts(values) == expected
    quality = QualityMeter(REQUIRED, ID_FIELD).measure([v or b"" for v in values])
    observed = [OBSERVER_VERDICT[reason] for reason, _detail in expected]
    assert quality.records == len(values)
    assert quality.unparseable == observed.count("unparseable")
    assert quality.invalid_records == observed.count("invalid")
    # Only visit_id "v-1" of the cases repeats nothing; the padding ids are all distinct.
    assert quality.duplicates == 0


def test_duplicates_count_repeats_within_the_window_but_not_the_first_or_blank_ids() -> None:
    values = [
        encode(visit(1)),
        encode(visit(1)),  # the first repeat
        encode(visit(1, page="")),  # an invalid record still carries its id
        encode(visit(2)),
        encode(visit(3, visit_id="")),
        encode(visit(4, visit_id=" ")),
        encode(visit(5, visit_id=None)),
        encode(visit(6, visit_id="v-2", user_id=7)),  # unparseable: its id is not read
    ]
    quality = QualityMeter(REQUIRED, ID_FIELD).measure(values)
    assert quality.duplicates == 2
    assert quality.invalid(ID_FIELD) == 3


def test_nested_required_fields_and_names_outside_the_schema() -> None:
    required = ["context.user.ip", "context.nope", "referrer"]
    values: list[bytes | None] = [
        encode(visit(1)),
        nested(2, "user", ip=" "),
        encode(visit(3, context=None, referrer="x")),  # an unknown top-level field is never read
    ]
    visits, dead = classify_arrow(kafka_table(values), 0, required)
    assert visits.num_rows == 0
    assert dead.column("detail").to_pylist() == [
        "context.nope,referrer",
        "context.user.ip,context.nope,referrer",
        "context.user.ip,context.nope,referrer",
    ]
    quality = QualityMeter(required, ID_FIELD).measure([v or b"" for v in values])
    assert quality.invalid_records == 3
    assert quality.invalid("context.user.ip") == 2
    assert quality.invalid("referrer") == 3
