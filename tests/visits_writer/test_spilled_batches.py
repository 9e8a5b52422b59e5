"""The ``python`` connector's default collection: read tasks spill the records as Arrow files and Spark
carries only their offsets (:mod:`streamwatch_visits_writer.spill_source`).

A real writer on a real topic of two partitions: the edge records, 1 MB values (valid, malformed, cut
short) and plain visits, over several micro-batches. Every record must land once, where the shared rule
puts it, with its key and value as Kafka holds them, and the spill directory must be gone after a graceful
stop.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from visits_writer.edge_records import EDGE_RECORDS
from visits_writer.records import encode, visit
from visits_writer.stack import WriterPaths, start_writer, table_rows, wait_rows, writer_env

from streamwatch_common.visit_record import DEFAULT_REQUIRED_FIELDS, Verdict, classify_values
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_visits_writer.schema import REASON_EMPTY, REASON_MISSING, REASON_UNPARSEABLE

pytestmark = pytest.mark.spark

MEGABYTE = 1_000_000


def _big_values() -> list[bytes]:
    """1 MB values: a valid visit, the same cut short, a non-JSON blob, a visit without its user."""
    page = "p" * MEGABYTE
    whole = encode(visit(9001, page=page))
    no_user = visit(9002, page=page)
    del no_user["user_id"]
    return [whole, whole[: MEGABYTE // 2], b"\x00garbage" * (MEGABYTE // 8), encode(no_user)]


def test_spilled_batches_land_every_record_once_where_the_shared_rule_puts_it(
    kafka: KafkaBroker, output_dir: Path
) -> None:
    topic = kafka.create_topic(partitions=2)
    values = [value for _case, value in EDGE_RECORDS] + _big_values()
    values += [encode(visit(n)) for n in range(10_000, 10_600)]
    # Broker default: at most ~1 MiB a record batch, so one record per request for the big ones.
    producer = kafka.producer(**{"message.max.bytes": 4 * MEGABYTE, "linger.ms": 0})
    for n, value in enumerate(values):
        producer.produce(topic, key=f"k-{n}".encode(), value=value, partition=n % 2)
        producer.flush(30)
    assert sum(kafka.end_offsets(topic).values()) == len(values)

    paths = WriterPaths(output_dir)
    env = writer_env(kafka, topic, paths, VISITS_WRITER_MAX_RECORDS_PER_TRIGGER="150")
    log = output_dir / "writer.log"
    writer = start_writer(log, env)
    try:
        wait_rows(paths, len(values), 180)
    finally:
        writer.signal(signal.SIGTERM)
        assert writer.wait(60) == 0, writer.tail()

    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    spill = [e["spill_directory"] for e in events if e.get("event") == "batch_collection"]
    assert spill and spill[0], f"the writer did not spill: {spill}"
    assert not Path(spill[0]).exists(), "the spill directory outlived the writer"
    written = [e for e in events if e.get("event") == "batch_written"]
    assert len(written) >= 3, "expected several micro-batches"
    assert sum(int(e["records"]) for e in written) == len(values)

    expected = classify_values(values, list(DEFAULT_REQUIRED_FIELDS))
    reasons = {
        Verdict.EMPTY: REASON_EMPTY,
        Verdict.UNPARSEABLE: REASON_UNPARSEABLE,
        Verdict.INVALID: REASON_MISSING,
    }
    # Produced in order, record n to partition n % 2: (partition, offset) names the record.
    position: dict[tuple[int, int], int] = {}
    for n in range(len(values)):
        position[(n % 2, sum(1 for p, _o in position if p == n % 2))] = n
    landed: dict[int, str | None] = {}
    for row in table_rows(paths.visits, ["partition", "offset"]):
        n = position[(row["partition"], row["offset"])]
        assert n not in landed, f"record {n} written twice"
        landed[n] = None
    for row in table_rows(paths.dead_letters, ["key", "value", "reason", "partition", "offset"]):
        n = position[(row["partition"], row["offset"])]
        assert n not in landed, f"record {n} written twice"
        assert row["key"] == f"k-{n}".encode() and row["value"] == values[n], (
            f"record {n} differs from Kafka's"
        )
        landed[n] = row["reason"]
    want = {n: reasons.get(Verdict(code)) for n, code in enumerate(expected.verdicts.tolist())}
    assert landed == want
    # The 1 MB ones: the valid one a visit, the others dead letters.
    big = range(len(EDGE_RECORDS), len(EDGE_RECORDS) + 4)
    assert [landed[n] for n in big] == [None, REASON_UNPARSEABLE, REASON_UNPARSEABLE, REASON_MISSING]
