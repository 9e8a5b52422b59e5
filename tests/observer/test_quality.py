"""Quality counts on real record blocks: fast path and record-level fallback agree with hand counts."""

from __future__ import annotations

import json

from observer.conftest import visit

from streamwatch_observer.quality import QualityMeter

REQUIRED = ["event_time", "user_id", "page"]


def test_clean_block_counts_nulls_empties_and_duplicates() -> None:
    values = [visit(i) for i in range(20)]
    values[3] = visit(3, user_id=None)
    values[4] = visit(4, page="")
    values[5] = visit(5, page="   ")
    values[6] = json.dumps({"visit_id": "v-6", "user_id": "u"}).encode()  # event_time, page missing
    values[7] = visit(1)  # duplicate of visit 1
    quality = QualityMeter(REQUIRED, "visit_id").measure(values)
    assert quality.records == 20
    assert quality.unparseable == 0
    assert quality.duplicates == 1
    assert quality.invalid("user_id") == 1
    assert quality.invalid("page") == 3
    assert quality.invalid("event_time") == 1
    assert quality.invalid_records == 4  # visits 3, 4, 5, 6
    assert quality.null_counts["context.user.connected_since"] == 20  # null everywhere
    assert quality.null_counts["context.user.ip"] == 1


def test_bad_records_are_counted_and_the_rest_still_measured() -> None:
    values = [visit(i) for i in range(200)]
    bad = {
        10: b"not json",
        20: b'{"visit_id": "v-20", "user_id": ',  # truncated
        30: b"",
        40: b"null",
        50: b"[1, 2]",
        60: json.dumps({"visit_id": "v-60", "user_id": 42, "page": "p"}).encode(),  # wrong type
        70: json.dumps({"visit_id": "v-70", "user_id": {"a": 1}}).encode(),
        80: b"\xff\xfe{",
        90: b'{"visit_id": "v-90",\n "user_id": "u"}',  # valid, but spans lines
    }
    for i, value in bad.items():
        values[i] = value
    values[100] = visit(100, event_time="")
    values[110] = visit(110, context={"referral": 5})  # optional field of the wrong type: unparseable
    big = visit(120, page="x" * (1 << 20))
    values[120] = big
    quality = QualityMeter(REQUIRED, "visit_id").measure(values)
    assert quality.records == 200
    assert quality.unparseable == 9  # all but the multi-line one, and v-110
    assert quality.invalid("event_time") == 2  # v-90 has none, v-100 is empty
    assert quality.invalid("page") == 1  # v-90
    assert quality.invalid_records == 2  # v-90, v-100
    assert quality.duplicates == 0


def test_fast_path_and_fallback_agree() -> None:
    clean = [visit(i, user_id=None if i % 3 == 0 else f"u{i}") for i in range(300)]
    meter = QualityMeter(REQUIRED, "visit_id")
    fast = meter.measure(clean)
    slow = meter.measure([*clean, b"garbage"])
    assert slow.unparseable == 1
    assert fast.invalid("user_id") == slow.invalid("user_id") == 100
    assert fast.null_counts == slow.null_counts
    assert fast.invalid_records == slow.invalid_records == 100


def test_required_field_absent_everywhere_counts_every_parsed_record() -> None:
    values = [json.dumps({"visit_id": f"v{i}"}).encode() for i in range(5)] + [b"x"]
    quality = QualityMeter(REQUIRED, "visit_id").measure(values)
    assert quality.unparseable == 1
    assert quality.invalid("page") == 5
    assert QualityMeter(REQUIRED, "visit_id").measure([]).records == 0
