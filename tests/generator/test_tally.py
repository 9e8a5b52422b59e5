"""The delivery tally tells apart an acknowledgement it cannot vouch for: one at an offset no higher than an
earlier one on the same partition, or with no offset (the broker took the record for a retry of an earlier
batch)."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, Message

from streamwatch_generator.plan import Kind
from streamwatch_generator.tally import DeliveryTally


def _ack(tally: DeliveryTally, partition: int, offset: int, kind: Kind = "valid") -> None:
    tally.callback(kind)(None, Message(topic=tally.topic, partition=partition, offset=offset, value=b"{}"))


def test_rising_offsets_per_partition_are_counted_without_repeats() -> None:
    tally = DeliveryTally("visits", partitions=2)
    for offset in range(5):
        _ack(tally, 0, offset)
        _ack(tally, 1, 100 + offset, "duplicate")
    assert tally.total == 10 and tally.offset_repeats == 0
    assert tally.by_partition_and_kind()["1"]["duplicate"] == 5


def test_an_acknowledgement_at_an_earlier_offset_is_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tally = DeliveryTally("visits", partitions=2)
    _ack(tally, 0, 7)
    _ack(tally, 1, 3)  # another partition's offsets are its own
    with caplog.at_level(logging.ERROR, logger="streamwatch_generator.tally"):
        _ack(tally, 0, 7)
        _ack(tally, 0, 6, "missing_fields")
    _ack(tally, 0, 8)
    assert tally.offset_repeats == 2
    # The broker did acknowledge them: they stay in the delivered counts, which the repeats qualify.
    assert tally.by_partition() == {"0": 4, "1": 1}
    (first, second) = [r for r in caplog.records if r.getMessage() == "acknowledged_offset_repeated"]
    assert (first.partition, first.offset, first.highest_acknowledged) == (0, 7, 7)  # type: ignore[attr-defined]
    assert (second.offset, second.kind) == (6, "missing_fields")  # type: ignore[attr-defined]


def test_an_acknowledgement_without_an_offset_is_counted_as_a_repeat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # librdkafka's answer to DUPLICATE_SEQUENCE_NUMBER: delivered, with an invalid offset.
    tally = DeliveryTally("visits", partitions=1)
    _ack(tally, 0, 4)
    with caplog.at_level(logging.ERROR, logger="streamwatch_generator.tally"):
        _ack(tally, 0, -1001)
    _ack(tally, 0, 5)  # the next one, at a higher offset, is not
    assert (tally.total, tally.offset_repeats) == (3, 1)
    (record,) = [r for r in caplog.records if r.getMessage() == "acknowledged_offset_repeated"]
    assert (record.offset, record.highest_acknowledged) == (None, 4)  # type: ignore[attr-defined]


def test_a_failed_delivery_is_a_failure_not_a_repeat() -> None:
    tally = DeliveryTally("visits", partitions=1)
    _ack(tally, 0, 4)
    error = KafkaError(KafkaError._MSG_TIMED_OUT)
    tally.callback("valid")(error, Message(topic="visits", partition=0, offset=-1001, value=b"{}"))
    assert (tally.failures, tally.offset_repeats, tally.total) == (1, 0, 1)
