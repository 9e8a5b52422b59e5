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

Usage (what ``RenewableClient`` does)::

    loss = BrokerLoss("producer")
    producer = Producer(loss.configure(settings.producer_config()))
    ...
    producer.poll(0)  # statistics are served by poll, like delivery reports
    if loss.orphaned(time.monotonic()):
        ...  # a new client, then
        loss.renewed("held no broker")
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


def broker_handles(stats: dict[str, Any]) -> list[str]:
    """Names of the broker handles in one librdkafka statistics document that can reach a broker."""
    brokers = stats.get("brokers") or {}
    return sorted(name for name, broker in brokers.items() if broker.get("source") in _REAL_SOURCES)


class BrokerLoss:
    """Tracks, from a client's statistics, since when it has held no broker handle."""

    def __init__(self, client: str) -> None:
        self.client = client
        self._none_since: float | None = None

    def configure(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` with statistics turned on and fed to this tracker (an operator's interval stays)."""
        return {"statistics.interval.ms": STATS_INTERVAL_MS, **config, "stats_cb": self.on_stats}

    def on_stats(self, document: str) -> None:
        try:
            handles = broker_handles(json.loads(document))
        except (ValueError, AttributeError) as exc:
            STATS_UNREADABLE.labels(self.client).inc()
            logger.warning("kafka_stats_unreadable", extra={"client": self.client, "error": repr(exc)})
            return
        self.observe(handles, time.monotonic())

    def observe(self, handles: list[str], now: float) -> None:
        if handles:
            self._none_since = None
        elif self._none_since is None:
            self._none_since = now
            logger.warning("kafka_client_holds_no_broker", extra={"client": self.client})

    def orphaned(self, now: float, after: float = RENEW_AFTER_SECONDS) -> bool:
        """True once the client has held no broker handle for ``after`` seconds."""
        return self._none_since is not None and now - self._none_since >= after

    def renewed(self, reason: str) -> None:
        """Count and log a replacement; the new client starts with a clean record."""
        RENEWALS.labels(self.client).inc()
        held_none = None if self._none_since is None else round(time.monotonic() - self._none_since, 1)
        logger.warning(
            "kafka_client_renewed",
            extra={"client": self.client, "reason": reason, "seconds_without_broker": held_none},
        )
        self._none_since = None
