"""Exact counts of what the broker acknowledged, per kind and partition, mirrored into Prometheus.

Counts change only in delivery callbacks, so they say what is in the topic, not what was attempted. One
acknowledgement they cannot vouch for is told apart: a record acknowledged at an offset no higher than one
acknowledged before on its partition. Acknowledgements of one partition come in produce order, each at a
higher offset, so such an answer is the broker taking the record for a retry of an earlier batch: it may
not be in the topic. So is one acknowledged with no offset: librdkafka's answer to the broker's
DUPLICATE_SEQUENCE_NUMBER, which says an earlier send was written, and which a sequence number given twice
would get too. Both are counted (``generator_acknowledged_offset_repeats_total``) and logged.
"""

from __future__ import annotations

import logging
from collections import Counter as Count
from typing import Any

from confluent_kafka import KafkaError, Message
from prometheus_client import Counter

from streamwatch_generator.plan import KINDS, Kind

logger = logging.getLogger(__name__)

RECORDS = Counter(
    "generator_records_total",
    "Records the broker acknowledged, by kind (valid, missing_fields, duplicate, unparseable) and partition.",
    ["kind", "partition"],
)
DELIVERY_FAILURES = Counter(
    "generator_delivery_failures_total", "Records the broker did not acknowledge (after client retries)."
)
OFFSET_REPEATS = Counter(
    "generator_acknowledged_offset_repeats_total",
    "Records acknowledged at an offset no higher than an earlier acknowledgement on the same partition, or"
    " with no offset: taken for a retry of an earlier batch, possibly not in the topic.",
)


class DeliveryTally:
    """Delivery-callback target; ``callback(kind)`` gives the callback to pass to ``produce``."""

    def __init__(self, topic: str, partitions: int) -> None:
        self.topic = topic
        self.partitions = partitions
        self.delivered: Count[tuple[Kind, int]] = Count()
        self.failures = 0
        self.offset_repeats = 0
        self._last_offset: dict[int, int] = {}
        for kind in KINDS:  # every series exists from the start, so rates and absent() behave
            for partition in range(partitions):
                RECORDS.labels(kind=kind, partition=str(partition))
        self._callbacks = {kind: self._make_callback(kind) for kind in KINDS}

    def callback(self, kind: Kind) -> Any:
        return self._callbacks[kind]

    def _make_callback(self, kind: Kind) -> Any:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                self.failures += 1
                DELIVERY_FAILURES.inc()
                logger.error(
                    "delivery_failed",
                    extra={
                        "topic": self.topic,
                        "partition": msg.partition(),
                        "kind": kind,
                        "error": str(err),
                    },
                )
                return
            partition = msg.partition()
            assert partition is not None  # set on every delivered message
            self._check_offset(kind, partition, msg.offset())
            self.delivered[(kind, partition)] += 1
            RECORDS.labels(kind=kind, partition=str(partition)).inc()

        return on_delivery

    def _check_offset(self, kind: Kind, partition: int, offset: int | None) -> None:
        known = offset if offset is not None and offset >= 0 else None  # librdkafka's invalid offset is < 0
        last = self._last_offset.get(partition)
        if known is not None and (last is None or known > last):
            self._last_offset[partition] = known
            return
        self.offset_repeats += 1
        OFFSET_REPEATS.inc()
        logger.error(
            "acknowledged_offset_repeated",
            extra={
                "topic": self.topic,
                "partition": partition,
                "offset": known,
                "highest_acknowledged": last,
                "kind": kind,
            },
        )

    @property
    def total(self) -> int:
        return sum(self.delivered.values())

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        for (kind, _), n in self.delivered.items():
            counts[kind] += n
        return counts

    def by_partition(self) -> dict[str, int]:
        counts = dict.fromkeys((str(p) for p in range(self.partitions)), 0)
        for (_, partition), n in self.delivered.items():
            counts[str(partition)] += n
        return counts

    def by_partition_and_kind(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {str(p): dict.fromkeys(KINDS, 0) for p in range(self.partitions)}
        for (kind, partition), n in self.delivered.items():
            table[str(partition)][kind] = n
        return table
