"""Both connectors of the visits writer give every record the shared rule's verdict (issue 22, point 6).

Every edge record goes to a real topic; the writer runs as a real process on each connector; each record
must land in the table, with the dead-letter reason and detail, that
:func:`streamwatch_common.visit_record.classify_values` (the observer's rule too) gives it, and a visit
must hold the fields that rule reads from it.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from visits_writer.edge_records import EDGE_RECORDS
from visits_writer.stack import WriterPaths, start_writer, table_rows, wait_rows, writer_env

from streamwatch_common.visit_record import DEFAULT_REQUIRED_FIELDS, VISIT, Verdict, classify_values
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.spark import CONNECTORS
from streamwatch_visits_writer.schema import (
    DETAIL_EMPTY,
    DETAIL_UNPARSEABLE,
    REASON_EMPTY,
    REASON_MISSING,
    REASON_UNPARSEABLE,
)

pytestmark = pytest.mark.spark

REQUIRED = list(DEFAULT_REQUIRED_FIELDS)
VALUES = [value for _case, value in EDGE_RECORDS]


def shared_verdicts() -> list[tuple[str | None, str | None, dict[str, Any] | None]]:
    """Per record: (reason, detail) as the shared rule has it, (None, None) for a visit, and the visit's
    fields where it is one."""
    result = classify_values(VALUES, REQUIRED)
    read = dict(zip(result.positions.tolist(), result.visits.to_pylist(), strict=True))
    missing = dict(zip(result.positions.tolist(), result.missing.to_pylist(), strict=True))
    fixed = {
        Verdict.VALID: (None, None),
        Verdict.EMPTY: (REASON_EMPTY, DETAIL_EMPTY),
        Verdict.UNPARSEABLE: (REASON_UNPARSEABLE, DETAIL_UNPARSEABLE),
    }
    expected: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for position, code in enumerate(result.verdicts.tolist()):
        verdict = Verdict(code)
        if verdict == Verdict.INVALID:
            expected.append((REASON_MISSING, missing[position], None))
        else:
            expected.append((*fixed[verdict], read[position] if verdict == Verdict.VALID else None))
    return expected


def _shown(landed: tuple[str | None, str | None, dict[str, Any] | None] | None) -> object:
    """Where a record landed, short: a dead letter's (reason, detail), or a visit's fields."""
    if landed is None:
        return "nowhere"
    reason, detail, visit = landed
    return ("visit", visit) if visit is not None else (reason, detail)


def test_the_edge_records_cover_every_verdict() -> None:
    reasons = {reason for reason, _detail, _visit in shared_verdicts()}
    assert reasons == {None, REASON_EMPTY, REASON_UNPARSEABLE, REASON_MISSING}
    assert len({case for case, _value in EDGE_RECORDS}) == len(EDGE_RECORDS)


@pytest.mark.parametrize("connector", CONNECTORS)
def test_every_edge_record_lands_where_the_shared_rule_puts_it(
    kafka: KafkaBroker, output_dir: Path, connector: str
) -> None:
    topic = kafka.create_topic(partitions=1)
    producer = kafka.producer()
    for offset, value in enumerate(VALUES):
        producer.produce(topic, key=f"edge-{offset}".encode(), value=value, partition=0)
    assert producer.flush(30) == 0
    assert kafka.end_offsets(topic) == {0: len(VALUES)}

    paths = WriterPaths(output_dir)
    env = writer_env(kafka, topic, paths, connector, VISITS_WRITER_MAX_RECORDS_PER_TRIGGER="1000")
    # delta-spark's first append loads and compiles much more than delta-rs's (see test_stream.py).
    writer = start_writer(output_dir / "writer.log", env)
    try:
        wait_rows(paths, len(VALUES), 300 if connector == "jvm" else 120)
    finally:
        writer.signal(signal.SIGTERM)
        assert writer.wait(60) == 0, writer.tail()

    visits = table_rows(paths.visits, ["offset", *VISIT.names])
    dead = table_rows(paths.dead_letters, ["offset", "key", "value", "reason", "detail"])
    landed: dict[int, tuple[str | None, str | None, dict[str, Any] | None]] = {}
    for row in visits:
        offset = row.pop("offset")
        assert offset not in landed, f"offset {offset} written twice"
        landed[offset] = (None, None, row)
    for row in dead:
        assert row["offset"] not in landed, f"offset {row['offset']} written twice"
        assert row["key"] == f"edge-{row['offset']}".encode() and row["value"] == VALUES[row["offset"]]
        landed[row["offset"]] = (row["reason"], row["detail"], None)

    expected = shared_verdicts()
    differ = {
        case: {"shared rule": _shown(expected[offset]), connector: _shown(landed.get(offset))}
        for offset, (case, _value) in enumerate(EDGE_RECORDS)
        if landed.get(offset) != expected[offset]
    }
    assert not differ, f"{len(differ)} of {len(EDGE_RECORDS)} records landed elsewhere: {differ}"
