"""The compiled classifier (``native/visit_classifier``) against the shared rule it stands in for.

The observer's meter reads each window in one call to the compiled classifier and hands the records it
defers to :func:`streamwatch_common.visit_record.classify_values`. These tests run the same values
through that and through the rule alone (``QualityMeter._measure_reference``, the meter before the
classifier) and compare every verdict, every count and every parsed row.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from streamwatch_visit_classifier import DEFER
from visits_writer.edge_records import EDGE_RECORDS
from visits_writer.records import encode, visit

from streamwatch_common.visit_record import DEFAULT_REQUIRED_FIELDS, ID_FIELD, classify_values
from streamwatch_generator.records import VisitFactory
from streamwatch_generator.records import encode as generator_encode
from streamwatch_generator.settings import REQUIRED_FIELDS as GENERATOR_REQUIRED
from streamwatch_observer.quality import QualityMeter

REQUIRED = list(DEFAULT_REQUIRED_FIELDS)


def generator_values(count: int, seed: int) -> list[bytes]:
    """Records as the generator writes them: mostly valid, with missing fields, repeated ids and records
    cut short (``streamwatch_generator.run``'s kinds), and repeated records."""
    rng = random.Random(seed)
    factory = VisitFactory(rng)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    values: list[bytes] = []
    for n in range(count):
        record = factory.visit(factory.visit_id(), start + timedelta(milliseconds=37 * n))
        draw = rng.random()
        if draw < 0.05:
            record, _nulled = factory.with_missing_fields(record, list(GENERATOR_REQUIRED))
        if draw > 0.98:
            values.append(factory.unparseable(record))
        elif draw > 0.96 and values:
            values.append(values[rng.randrange(len(values))])  # a duplicate (sometimes of a bad one)
        else:
            values.append(generator_encode(record))
    return values


def assert_same(values: list[bytes], meter: QualityMeter) -> None:
    """Verdicts, counts and rows of the meter equal the shared rule's, value by value."""
    window = meter.classify(values)
    assert window is not None
    expected = classify_values(values, meter.required)
    assert window.verdicts.tolist() == expected.verdicts.tolist()
    new, old = meter.measure(values), meter._measure_reference(values)
    assert (new.records, new.unparseable, new.duplicates, new.invalid_records) == (
        old.records,
        old.unparseable,
        old.duplicates,
        old.invalid_records,
    )
    assert new.null_counts == old.null_counts
    if meter.keep_rows:
        assert isinstance(new.rows, pa.Table) and isinstance(old.rows, pa.Table)
        assert new.rows.schema == old.rows.schema
        assert new.rows.equals(old.rows)


@pytest.mark.parametrize("keep_rows", [False, True])
def test_100k_generator_records_get_the_shared_rules_verdicts_counts_and_rows(keep_rows: bool) -> None:
    values = generator_values(100_000, seed=21)
    meter = QualityMeter(REQUIRED, ID_FIELD, keep_rows=keep_rows)
    for start in range(0, len(values), 10_000):  # as the observer's 10k-record windows
        assert_same(values[start : start + 10_000], meter)
    window = meter.classify(values)
    assert window is not None
    # Only the records cut short are deferred: the classifier decides every generator record it can.
    assert 0 < window.deferred < 0.03 * len(values)
    assert int((window.verdicts == 3).sum()) > 1000  # the generator's missing fields: invalid


def test_edge_records_alone_and_among_good_records() -> None:
    meter = QualityMeter(REQUIRED, ID_FIELD, keep_rows=True)
    edge = [value or b"" for _case, value in EDGE_RECORDS]
    for value in edge:
        assert_same([value], meter)
    mixed: list[bytes] = []
    for n, value in enumerate(edge):
        mixed += [encode(visit(5000 + 10 * n + k)) for k in range(5)] + [value, encode(visit(1))]
    assert_same(mixed, meter)


def test_timestamps_the_classifier_reads_get_arrows_values() -> None:
    # Forms it decides itself (with offsets, fractions, a space) and forms it leaves to Arrow.
    texts = [
        "2026-01-01T00:00:00.000+00:00",
        "2026-01-01T00:00:00Z",
        "2026-01-01 23:59:59.5",
        "2024-02-29T12:00:00.123456-05:30",
        "2026-01-01T00:00:00+23:59",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
        "1969-12-31T23:59:59.999999Z",
        "2026-01-01",
        "2026-01-01T00:00",
        "2026-01-01T00:00:00-0530",
        "2026-01-01T00:00:00.1234567Z",
        "2026-02-30T00:00:00",
        "2025-02-29T00:00:00",
        "2026-01-01T24:00:00",
        "2026-01-01t00:00:00",
        " 2026-01-01T00:00:00",
        "\u2003",
    ]
    values = [encode(visit(n, event_time=t)) for n, t in enumerate(texts)]
    rng = random.Random(7)
    for n in range(2000):
        moment = datetime(1900, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**17))
        spec = rng.choice(["seconds", "milliseconds", "microseconds"])
        text = moment.isoformat(timespec=spec)
        values.append(encode(visit(100 + n, event_time=rng.choice([text, text.replace("+00:00", "Z")]))))
    assert_same(values, QualityMeter(REQUIRED, ID_FIELD, keep_rows=True))


def test_blank_and_unicode_text_in_every_field() -> None:
    blanks = ["", " ", "\t", "\u00a0", "\u2003", "\u3000", "\x1c", "\u200b", "a", " a ", "\u0085"]
    values: list[bytes] = []
    for n, blank in enumerate(blanks):
        values.append(encode(visit(n, user_id=blank, page=blank, keep_private=blank)))
        values.append(encode(visit(100 + n, visit_id=blank, context={"user": {"connected_since": blank}})))
        values.append(json.dumps(visit(200 + n, page=blank + "é"), ensure_ascii=False).encode())
        values.append(encode(visit(300 + n, page="\\u00e9" + blank)).replace(b"\\\\", b"\\"))
    values.append(b'{"visit_id":"v-1","user_id":"u\\ud800","page":"p","event_time":null}')  # lone surrogate
    values.append(b'{"visit_id":"v-1","x":1e999,"user_id":"u","page":"p","event_time":null}')
    values.append(b'{"visit_id":"v-1","x":{"a":1,"a":2},"keep_private":" ","user_id":"u","page":"p"}')
    values.append(b'{"visit_id":"v-1","x":1,"x":2,"user_id":"u","page":"p"}')
    values.append(b'{"visit\\u005fid":"v-2","user_id":"u","page":"p"}')
    values.append(b"{}")
    values.append(b'{"context":{}}')
    for required in (REQUIRED, ["context.user.ip"], ["context"], ["context.user"], ["nowhere"]):
        for id_field in (ID_FIELD, "page", "keep_private", "context", "nowhere"):
            assert_same(values, QualityMeter(required, id_field, keep_rows=True))
            assert_same(values, QualityMeter(required, id_field, keep_rows=False))


def test_malformed_and_oversized_records_are_unparseable_and_cost_no_more_than_before() -> None:
    big = "x" * (1 << 20)
    bad = [
        encode(visit(1, page=big))[: len(big) // 2],  # 1 MB cut short
        b"{" * (1 << 20),  # 1 MB of nesting
        b"[" * 100_000 + b"]" * 100_000,
        b'{"visit_id": "v", "page": "' + b"\xff" * (1 << 20) + b'"}',
        b"{" + b'"a":1,' * 200_000 + b'"visit_id":"v-a"}',  # a key outside the schema 200k times
        b"\x00" * 1000,
    ]
    many_keys = b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(100_000)) + b',"visit_id":"v-k"}'
    values = [encode(visit(n)) for n in range(2000)]
    for n, value in enumerate(bad):
        values.insert(300 * n + 7, value)
    values.append(encode(visit(9, notes=big)))  # 1 MB in a field outside the schema: valid
    values.append(many_keys)  # 100k keys outside the schema: parses, required fields missing
    meter = QualityMeter(REQUIRED, ID_FIELD, keep_rows=True)
    started = time.perf_counter()
    quality = meter.measure(values)
    took = time.perf_counter() - started
    window = meter.classify(values)
    assert window is not None
    verdicts = window.verdicts
    assert quality.unparseable == 5 and quality.records == len(values)
    # Keys outside the schema are ignored, repeated or not: both objects of them parse, without page.
    assert quality.invalid_records == 2
    assert int((verdicts == 2).sum()) == 5
    assert_same(values, meter)
    started = time.perf_counter()
    meter._measure_reference(values)
    assert took < 2 * (time.perf_counter() - started) + 1.0


def test_values_the_classifier_defers_are_exactly_the_odd_ones() -> None:
    meter = QualityMeter(REQUIRED, ID_FIELD)
    raw, *_ = meter._classifier.classify(
        [encode(visit(1)), b"", b"not json", b' {"visit_id":"v"}', encode(visit(2, event_time="2026-01-01"))],
        False,
    )
    assert np.frombuffer(raw, dtype=np.int8).tolist() == [0, 1, DEFER, DEFER, 0]
