"""A failing rebalance callback is logged with its context, counted, and raised as the project's error."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import REGISTRY

from streamwatch_observer.rebalance import RebalanceError, guarded


def _failures(callback: str) -> float:
    labels = {"callback": callback}
    return REGISTRY.get_sample_value("observer_rebalance_failures_total", labels) or 0.0


def test_a_failing_callback_is_logged_counted_and_raised_as_rebalance_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
        raise ValueError("boom")

    before = _failures("assign")
    with caplog.at_level(logging.ERROR), pytest.raises(RebalanceError) as raised:
        guarded("assign", on_assign)(None, [TopicPartition("t", 1), TopicPartition("t", 0)])  # type: ignore[arg-type]
    assert isinstance(raised.value.__cause__, ValueError)
    assert _failures("assign") == before + 1
    (record,) = [r for r in caplog.records if r.getMessage() == "rebalance_callback_failed"]
    assert record.__dict__["callback"] == "assign" and record.__dict__["partitions"] == [0, 1]
    assert "ValueError: boom" in record.__dict__["error"] and record.exc_info is not None


def test_a_callback_that_succeeds_is_neither_logged_nor_counted(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[int] = []

    def on_revoke(consumer: Consumer, partitions: list[TopicPartition]) -> None:
        seen.extend(tp.partition for tp in partitions)

    before = _failures("revoke")
    guarded("revoke", on_revoke)(None, [TopicPartition("t", 3)])  # type: ignore[arg-type]
    assert seen == [3] and _failures("revoke") == before
    assert not [r for r in caplog.records if r.getMessage() == "rebalance_callback_failed"]
