"""The generator's records, end to end: generator process → real broker → consumer."""

from __future__ import annotations

import json
from collections import Counter

from generator.support import (
    Row,
    StartGenerator,
    assert_every_line_is_json,
    read_rows,
    run_to_total,
    summary,
)

from streamwatch_dev.kafka import KafkaBroker

REQUIRED = ("event_time", "user_id", "page")
SEEDED = {"GENERATOR_SEED": "42", "GENERATOR_EVENT_TIME_START": "2026-01-01T00:00:00Z"}


def classify(rows: list[Row]) -> tuple[Counter[str], dict[str, list[Row]]]:
    """Kind of every row, judged only from what a consumer sees."""
    kinds: Counter[str] = Counter()
    examples: dict[str, list[Row]] = {}
    originals: dict[tuple[int, bytes], bytes] = {}
    for row in rows:
        try:
            doc = json.loads(row.value)
        except ValueError:
            kind = "unparseable"
        else:
            if any(doc[name] is None for name in REQUIRED):
                kind = "missing_fields"
            elif (row.partition, row.key) in originals:
                kind = "duplicate"
            else:
                kind = "valid"
                originals[(row.partition, row.key)] = row.value
        kinds[kind] += 1
        examples.setdefault(kind, []).append(row)
    return kinds, examples


def by_partition(rows: list[Row]) -> dict[str, int]:
    return {str(p): n for p, n in sorted(Counter(r.partition for r in rows).items())}


def test_10k_records_exact_counts_and_composition(
    kafka: KafkaBroker, start_generator: StartGenerator
) -> None:
    total = 10_000
    process, rows = run_to_total(
        kafka,
        start_generator,
        partitions=3,
        total=total,
        GENERATOR_MISSING_FIELDS_PERCENT="10",
        GENERATOR_DUPLICATE_PERCENT="5",
        GENERATOR_UNPARSEABLE_PERCENT="3",
        **SEEDED,
    )
    report = summary(process)

    # exact count, per partition, matching what the generator says it delivered
    assert len(rows) == total == report["delivered"]
    assert report["delivery_failures"] == 0
    assert by_partition(rows) == report["by_partition"]
    assert set(report["by_partition"]) == {"0", "1", "2"}

    # what a consumer sees is exactly what the generator counted, kind by kind
    kinds, examples = classify(rows)
    assert dict(kinds) == {k: n for k, n in report["by_kind"].items() if n}
    for kind, wanted in (("missing_fields", 10), ("duplicate", 5), ("unparseable", 3)):
        share = 100 * kinds[kind] / total
        assert abs(share - wanted) <= 2, f"{kind}: {share:.2f}% of rows, configured {wanted}%"
    assert abs(100 * kinds["valid"] / total - 82) <= 2

    # unparseable rows are not JSON, but are still keyed and on the key's partition
    for row in examples["unparseable"]:
        try:
            json.loads(row.value)
        except ValueError:
            continue
        raise AssertionError(f"unparseable row parses: {row.value!r}")

    # missing-field rows are valid JSON with nulls in some required fields, everything else present
    nulled_fields: Counter[str] = Counter()
    for row in examples["missing_fields"]:
        doc = json.loads(row.value)
        nulled = [name for name in REQUIRED if doc[name] is None]
        assert nulled and doc["visit_id"] == row.key.decode()
        nulled_fields.update(nulled)
    assert set(nulled_fields) == set(REQUIRED), nulled_fields

    # duplicates repeat an earlier valid record byte for byte, with the same key, on the same partition
    earlier: dict[tuple[int, bytes], bytes] = {}
    for row in rows:
        if row in examples.get("duplicate", []):
            assert earlier[(row.partition, row.key)] == row.value
        else:
            earlier.setdefault((row.partition, row.key), row.value)

    # valid rows have the full visit shape and their key is their visit_id
    doc = json.loads(examples["valid"][0].value)
    assert set(doc) == {"visit_id", "event_time", "user_id", "keep_private", "page", "context"}
    assert set(doc["context"]) == {"referral", "ad_id", "user", "technical"}
    assert set(doc["context"]["user"]) == {"ip", "login", "connected_since"}
    assert set(doc["context"]["technical"]) == {
        "browser",
        "browser_version",
        "network_type",
        "device_type",
        "device_version",
    }
    assert all(json.loads(r.value)["visit_id"] == r.key.decode() for r in examples["valid"])
    assert len({r.key for r in examples["valid"]}) == kinds["valid"]

    assert_every_line_is_json(process.log_path)


def test_missing_fields_setting_limits_which_fields_are_nulled(
    kafka: KafkaBroker, start_generator: StartGenerator
) -> None:
    _, rows = run_to_total(
        kafka,
        start_generator,
        partitions=1,
        total=300,
        GENERATOR_MISSING_FIELDS_PERCENT="100",
        GENERATOR_DUPLICATE_PERCENT="0",
        GENERATOR_UNPARSEABLE_PERCENT="0",
        GENERATOR_MISSING_FIELDS="page",
    )
    docs = [json.loads(r.value) for r in rows]
    assert len(docs) == 300
    assert all(d["page"] is None and d["user_id"] and d["event_time"] for d in docs)


def test_same_seed_gives_byte_identical_records(kafka: KafkaBroker, start_generator: StartGenerator) -> None:
    settings = {"GENERATOR_RATE": "0", "GENERATOR_TOTAL": "1000", **SEEDED}
    topics = [kafka.create_topic(partitions=2) for _ in range(3)]
    runs = [
        start_generator(topics[0], wait_ready=False, **settings),
        start_generator(topics[1], wait_ready=False, **settings),
        start_generator(topics[2], wait_ready=False, **{**settings, "GENERATOR_SEED": "43"}),
    ]
    assert [p.wait(60) for p in runs] == [0, 0, 0]
    first, second, other = ([(r.partition, r.key, r.value) for r in read_rows(kafka, t)] for t in topics)
    assert len(first) == 1000
    assert first == second
    assert {v for _, _, v in first}.isdisjoint({v for _, _, v in other})


def test_skew_more_sends_the_configured_share_to_one_partition(
    kafka: KafkaBroker, start_generator: StartGenerator
) -> None:
    process, rows = run_to_total(
        kafka,
        start_generator,
        partitions=3,
        total=3000,
        GENERATOR_SKEW_PARTITION="2",
        GENERATOR_SKEW_MODE="more",
        GENERATOR_SKEW_SHARE_PERCENT="70",
    )
    counts = by_partition(rows)
    assert counts == summary(process)["by_partition"]
    assert abs(100 * counts["2"] / 3000 - 70) <= 3, counts
    assert abs(counts["0"] - counts["1"]) <= 150, counts


def test_skew_pause_stops_one_partition_after_n_records(
    kafka: KafkaBroker, start_generator: StartGenerator
) -> None:
    process, rows = run_to_total(
        kafka,
        start_generator,
        partitions=3,
        total=2000,
        GENERATOR_SKEW_PARTITION="0",
        GENERATOR_SKEW_MODE="pause",
        GENERATOR_SKEW_PAUSE_AFTER="50",
        GENERATOR_MISSING_FIELDS_PERCENT="0",
        GENERATOR_UNPARSEABLE_PERCENT="0",
        **SEEDED,
    )
    report = summary(process)
    assert by_partition(rows) == report["by_partition"]
    assert report["by_partition"]["0"] == 50
    assert report["by_partition"]["1"] + report["by_partition"]["2"] == 1950
    assert report["paused_partition"] == 0

    # partition 0 got its 50 records early in the run (100 ms of event time per record), then nothing
    def last_event_time(partition: int) -> str:
        return max(str(json.loads(r.value)["event_time"]) for r in rows if r.partition == partition)

    assert last_event_time(0) < "2026-01-01T00:01:00"
    assert last_event_time(1) > "2026-01-01T00:03:00"
