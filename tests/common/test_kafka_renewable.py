"""The renewable client handle: one configuration, one tracker, a new client only once orphaned, and a
hook that runs while the old client is still the one served."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from streamwatch_common.kafka_health import COORDINATOR_GRACE_SECONDS, RENEW_AFTER_SECONDS
from streamwatch_common.kafka_renewable import RenewableClient


class Made:
    """A client stand-in that remembers the configuration it was made with."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config


def _renewals() -> float:
    return REGISTRY.get_sample_value("kafka_client_renewals_total", {"client": "unit-renewable"}) or 0.0


def test_a_client_is_replaced_only_once_orphaned_and_the_hook_sees_the_old_one_served() -> None:
    seen: list[tuple[Made, Made, Made]] = []

    def on_renew(old: Made, new: Made) -> None:
        seen.append((old, new, handle.client))

    handle = RenewableClient("unit-renewable", {"bootstrap.servers": "b:1"}, Made, on_renew=on_renew)
    first = handle.client
    assert first.config is handle.config and first.config["stats_cb"] == handle.loss.on_stats
    assert not handle.renew_if_orphaned(0.0)
    handle.loss.observe([], now=0.0)
    assert not handle.renew_if_orphaned(RENEW_AFTER_SECONDS - 0.1)
    before = _renewals()
    assert handle.renew_if_orphaned(RENEW_AFTER_SECONDS)
    ((old, new, served),) = seen
    assert old is first and served is first and handle.client is new is not first
    assert new.config is handle.config  # the same configuration, the same tracker
    assert _renewals() == before + 1
    assert not handle.renew_if_orphaned(10 * RENEW_AFTER_SECONDS)  # the new client starts clean


def test_a_group_client_whose_coordinator_stays_unknown_is_replaced_saying_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = {"bootstrap.servers": "b:1", "session.timeout.ms": 6000}
    handle = RenewableClient("unit-renewable-group", config, Made, coordinator=True)
    first = handle.client
    after = handle.loss.coordinator_after
    assert after == 6.0 + COORDINATOR_GRACE_SECONDS
    handle.loss.observe(["b:1/1"], now=0.0)  # it holds a broker all along
    handle.loss.observe_group("query-coord", now=0.0)
    assert not handle.renew_if_orphaned(after - 0.1)
    with caplog.at_level(logging.WARNING):
        assert handle.renew_if_orphaned(after)
    assert handle.client is not first
    (renewed,) = [r for r in caplog.records if r.getMessage() == "kafka_client_renewed"]
    assert renewed.__dict__["reason"] == "group coordinator unknown"
