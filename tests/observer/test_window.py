"""Consumed batches become per-partition windows closed by record count or age, in offset order."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, Message
from observer.units import message

from streamwatch_observer.window import OpenWindows


def test_batches_are_cut_into_windows_of_the_record_limit_per_partition() -> None:
    windows = OpenWindows(limit=3)
    batch = [message(0, o, b"{}") for o in range(5)] + [message(1, o, b"{}") for o in range(10, 12)]
    full = windows.add(batch, owned={0, 1})
    assert [(w.partition, w.start_offset, w.end_offset, len(w.values)) for w in full] == [(0, 0, 2, 3)]
    full = windows.add([message(0, 5, None), message(1, 12, b"{}")], owned={0, 1})
    # A tombstone is kept as an empty value (the meter counts it unparseable).
    assert [(w.partition, w.start_offset, w.end_offset, w.values) for w in full] == [
        (0, 3, 5, [b"{}", b"{}", b""]),
        (1, 10, 12, [b"{}", b"{}", b"{}"]),
    ]
    assert windows.records == 0


def test_records_of_partitions_not_owned_and_end_of_partition_events_are_skipped() -> None:
    windows = OpenWindows(limit=100)
    eof = Message(topic="t", partition=0, offset=7, error=KafkaError(KafkaError._PARTITION_EOF))
    windows.add([message(0, 0, b"{}"), eof, message(1, 0, b"{}")], owned={0})
    assert windows.records == 1
    assert windows.drop([0, 1]) == 1
    assert windows.records == 0


def test_old_windows_are_due_and_shutdown_closes_the_rest() -> None:
    windows = OpenWindows(limit=100)
    windows.add([message(0, 0, b"{}"), message(1, 0, b"{}")], owned={0, 1})
    assert windows.due(now=time.monotonic(), max_age=60) == []
    due = windows.due(now=time.monotonic() + 61, max_age=60)
    assert sorted(w.partition for w in due) == [0, 1]
    windows.add([message(0, 1, b"{}")], owned={0})
    (last,) = windows.close_all()
    assert (last.partition, last.start_offset, last.end_offset) == (0, 1, 1)
    assert windows.records == 0
