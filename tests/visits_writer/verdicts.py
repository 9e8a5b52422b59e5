"""Where the edge records (:mod:`visits_writer.edge_records`) must land in the visits writer's tables: the
table, dead-letter reason and detail that :func:`streamwatch_common.visit_record.classify_values` (the
observer's rule too) gives each, and for a visit the fields that rule reads from it.

Usage::

    edge = produce_edge_records(kafka, topic, partition=0)    # their offsets, in EDGE_RECORDS' order
    ...                                                        # the writer runs
    assert_edge_records_landed(paths, 0, edge, connector)
"""

from __future__ import annotations

from typing import Any

from visits_writer.edge_records import EDGE_RECORDS
from visits_writer.stack import WriterPaths, table_rows

from streamwatch_common.visit_record import DEFAULT_REQUIRED_FIELDS, VISIT, Verdict, classify_values
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_visits_writer.schema import (
    DETAIL_EMPTY,
    DETAIL_UNPARSEABLE,
    REASON_EMPTY,
    REASON_MISSING,
    REASON_UNPARSEABLE,
)

VALUES = [value for _case, value in EDGE_RECORDS]
# (reason, detail, visit): (None, None, fields) for a visit, (reason, detail, None) for a dead letter.
Landing = tuple[str | None, str | None, dict[str, Any] | None]


def shared_verdicts() -> list[Landing]:
    """Per edge record, in order: where the shared rule puts it."""
    result = classify_values(VALUES, list(DEFAULT_REQUIRED_FIELDS))
    read = dict(zip(result.positions.tolist(), result.visits.to_pylist(), strict=True))
    missing = dict(zip(result.positions.tolist(), result.missing.to_pylist(), strict=True))
    fixed = {
        Verdict.VALID: (None, None),
        Verdict.EMPTY: (REASON_EMPTY, DETAIL_EMPTY),
        Verdict.UNPARSEABLE: (REASON_UNPARSEABLE, DETAIL_UNPARSEABLE),
    }
    expected: list[Landing] = []
    for position, code in enumerate(result.verdicts.tolist()):
        verdict = Verdict(code)
        if verdict == Verdict.INVALID:
            expected.append((REASON_MISSING, missing[position], None))
        else:
            expected.append((*fixed[verdict], read[position] if verdict == Verdict.VALID else None))
    return expected


def produce_edge_records(kafka: KafkaBroker, topic: str, partition: int) -> range:
    """Every edge record to ``partition``, in order, keyed ``edge-<index>``; returns their offsets."""
    first = kafka.end_offsets(topic).get(partition, 0)
    producer = kafka.producer()
    for index, value in enumerate(VALUES):
        producer.produce(topic, key=f"edge-{index}".encode(), value=value, partition=partition)
    assert producer.flush(30) == 0
    assert kafka.end_offsets(topic)[partition] == first + len(VALUES), "another producer wrote in between"
    return range(first, first + len(VALUES))


def _shown(landed: Landing | None) -> object:
    """Where a record landed, short: a dead letter's (reason, detail), or a visit's fields."""
    if landed is None:
        return "nowhere"
    reason, detail, visit = landed
    return ("visit", visit) if visit is not None else (reason, detail)


def assert_edge_records_landed(paths: WriterPaths, partition: int, offsets: range, label: str) -> None:
    """Each edge record (at ``offsets`` in ``partition``, as :func:`produce_edge_records` put them) is in the
    table, with the reason and detail, or the fields, that the shared rule gives it; none twice."""
    first = offsets.start
    options = paths.storage_options
    visits = table_rows(paths.visits, ["partition", "offset", *VISIT.names], options)
    columns = ["partition", "offset", "key", "value", "reason", "detail"]
    dead = table_rows(paths.dead_letters, columns, options)
    landed: dict[int, Landing] = {}
    for row in visits:
        if row.pop("partition") != partition or row["offset"] not in offsets:
            continue
        index = row.pop("offset") - first
        assert index not in landed, f"edge record {index} written twice"
        landed[index] = (None, None, row)
    for row in dead:
        if row["partition"] != partition or row["offset"] not in offsets:
            continue
        index = row["offset"] - first
        assert index not in landed, f"edge record {index} written twice"
        assert row["key"] == f"edge-{index}".encode() and row["value"] == VALUES[index]
        landed[index] = (row["reason"], row["detail"], None)

    expected = shared_verdicts()
    differ = {
        case: {"shared rule": _shown(expected[index]), label: _shown(landed.get(index))}
        for index, (case, _value) in enumerate(EDGE_RECORDS)
        if landed.get(index) != expected[index]
    }
    assert not differ, f"{len(differ)} of {len(EDGE_RECORDS)} records landed elsewhere: {differ}"
