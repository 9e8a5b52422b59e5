"""Whether a long-lived librdkafka client still holds a broker to talk to, read from its own statistics.

During a controlled shutdown a single-broker KRaft cluster answers metadata requests with no brokers at
all (the broker is already fenced). librdkafka drops every broker it learned that such a response does not
list, and its bootstrap brokers went after the first metadata, so a client that asked at that moment is
left holding none. It reports no error after that, never sends another request and never bootstraps
again: a producer queues records until they time out, a consumer never finds its group coordinator. Only
a new client gets back. :class:`BrokerLoss` follows the broker handles a client reports in its statistics;
the long-lived clients (the generator's producer, the observer's consumer and lag probe) sit behind a
``kafka_renewable.RenewableClient``, which replaces them once they have held none for
:data:`RENEW_AFTER_SECONDS` (README, "Broker restarts and librdkafka").

A group consumer can also be left holding a broker handle yet never finding its group coordinator again
after a broker restart: its session times out, its partitions are lost, and it waits outside the group
for good while the other members share its partitions. For a client that watches its group
(``coordinator=True``), the statistics' group state counts too: one whose coordinator has been unknown
past its session timeout (when the group has dropped it anyway) and :data:`COORDINATOR_GRACE_SECONDS`
more is replaced like one without a broker.

Usage (what ``RenewableClient`` does)::

    loss = BrokerLoss("producer")
    producer = Producer(loss.configure(settings.producer_config()))
    ...
    producer.poll(0)  # statistics are served by poll, like delivery reports
    reason = loss.reason(time.monotonic())
    if reason is not None:
        ...  # a new client, then
        loss.renewed(reason)
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from prometheus_client import Counter

logger = logging.getLogger(__name__)

RENEWALS = Counter(
    "kafka_client_renewals_total",
    "Kafka clients replaced because they held no broker at all (see streamwatch_common.kafka_health).",
    ["client"],
)
STATS_UNREADABLE = Counter(
    "kafka_client_stats_unreadable_total",
    "librdkafka statistics documents that could not be read.",
    ["client"],
)

# Statistics every few seconds cost a small JSON document each; a client is judged on several of them.
STATS_INTERVAL_MS = 5_000
# Several statistics in a row without a broker: a re-bootstrap in progress holds none for well under one.
RENEW_AFTER_SECONDS = 30.0
# Broker handles a client can send to: from bootstrap.servers ("configured") or from metadata ("learned").
# The internal and logical handles (the group coordinator's alias) never connect anywhere by themselves.
_REAL_SOURCES = frozenset({"configured", "learned"})
# librdkafka's group state once the coordinator is known and connected (its other states look for one).
_COORDINATOR_UP = "up"
# librdkafka's default session.timeout.ms: the group drops a member it has not heard from for this long.
_DEFAULT_SESSION_TIMEOUT_MS = 45_000
# Beyond the session timeout: a coordinator lost only for a broker restart is found again well within it.
COORDINATOR_GRACE_SECONDS = 15.0


def broker_handles(stats: dict[str, Any]) -> list[str]:
    """Names of the broker handles in one librdkafka statistics document that can reach a broker."""
    brokers = stats.get("brokers") or {}
    return sorted(name for name, broker in brokers.items() if broker.get("source") in _REAL_SOURCES)


def group_state(stats: dict[str, Any]) -> str | None:
    """The group state of a consumer's statistics document (``up`` once its coordinator is known), or None
    for a client that has no group."""
    group = stats.get("cgrp")
    return None if not group else str(group.get("state"))


class BrokerLoss:
    """Tracks, from a client's statistics, since when it has held no broker handle and, for a client that
    watches its group, since when its group coordinator has been unknown."""

    def __init__(self, client: str, *, coordinator: bool = False) -> None:
        self.client = client
        self.coordinator = coordinator
        self.coordinator_after: float | None = None
        self._none_since: float | None = None
        self._no_coordinator_since: float | None = None

    def configure(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` with statistics turned on and fed to this tracker (an operator's interval stays); for
        a client that watches its group, its session timeout sets how long its coordinator may be unknown."""
        if self.coordinator:
            session_ms = float(config.get("session.timeout.ms", _DEFAULT_SESSION_TIMEOUT_MS))
            self.coordinator_after = session_ms / 1000 + COORDINATOR_GRACE_SECONDS
        return {"statistics.interval.ms": STATS_INTERVAL_MS, **config, "stats_cb": self.on_stats}

    def on_stats(self, document: str) -> None:
        try:
            stats = json.loads(document)
            handles = broker_handles(stats)
            state = group_state(stats)
        except (ValueError, AttributeError) as exc:
            STATS_UNREADABLE.labels(self.client).inc()
            logger.warning("kafka_stats_unreadable", extra={"client": self.client, "error": repr(exc)})
            return
        now = time.monotonic()
        self.observe(handles, now)
        self.observe_group(state, now)

    def observe(self, handles: list[str], now: float) -> None:
        if handles:
            self._none_since = None
        elif self._none_since is None:
            self._none_since = now
            logger.warning("kafka_client_holds_no_broker", extra={"client": self.client})

    def observe_group(self, state: str | None, now: float) -> None:
        """Record the group state of one statistics document (ignored unless the client watches its group:
        :meth:`configure` then set how long its coordinator may be unknown)."""
        if self.coordinator_after is None or state is None or state == _COORDINATOR_UP:
            self._no_coordinator_since = None
        elif self._no_coordinator_since is None:
            self._no_coordinator_since = now
            logger.info("kafka_group_coordinator_unknown", extra={"client": self.client, "state": state})

    def reason(self, now: float) -> str | None:
        """Why the client is to be replaced: it has held no broker handle for :data:`RENEW_AFTER_SECONDS`,
        or its coordinator has been unknown past the session timeout and the grace; None while neither
        holds."""
        if self._none_since is not None and now - self._none_since >= RENEW_AFTER_SECONDS:
            return "held no broker"
        lost, after = self._no_coordinator_since, self.coordinator_after
        if lost is not None and after is not None and now - lost >= after:
            return "group coordinator unknown"
        return None

    def renewed(self, reason: str) -> None:
        """Count and log a replacement; the new client starts with a clean record."""
        RENEWALS.labels(self.client).inc()
        now = time.monotonic()
        held_none = None if self._none_since is None else round(now - self._none_since, 1)
        lost = None if self._no_coordinator_since is None else round(now - self._no_coordinator_since, 1)
        logger.warning(
            "kafka_client_renewed",
            extra={
                "client": self.client,
                "reason": reason,
                "seconds_without_broker": held_none,
                "seconds_without_coordinator": lost,
            },
        )
        self._none_since = None
        self._no_coordinator_since = None
