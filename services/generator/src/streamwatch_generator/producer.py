"""The generator's producer, replaced by a new one when it holds no broker at all.

A producer can lose every broker handle during the broker's controlled shutdown and never get one back
(``streamwatch_common.kafka_health``). Its handle (``streamwatch_common.kafka_renewable``) replaces it
then; the renew hook here purges what the old producer still holds and hands those records, in their
order and with their callbacks, to the new producer; each carries the time it is sent again (librdkafka
reports no timestamp for a purged record). A record purged while in flight may already be in the topic,
so it can be written twice; it is counted apart (``generator_records_resent_total{state="in_flight"}``).
A producer that held no broker had no request in flight, so that count stays 0 in the case this exists
for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import Counter

from streamwatch_common.kafka_renewable import RenewableClient

logger = logging.getLogger(__name__)

RESENT = Counter(
    "generator_records_resent_total",
    "Records moved to a new producer when the old one held no broker: never sent (`unsent`) or sent"
    " without an answer (`in_flight`, possibly written twice).",
    ["state"],
)
for _state in ("unsent", "in_flight"):
    RESENT.labels(_state)

DeliveryCallback = Callable[[KafkaError | None, Message], None]
_PURGED = {KafkaError._PURGE_QUEUE: "unsent", KafkaError._PURGE_INFLIGHT: "in_flight"}
# Purged records' delivery reports are served by poll; purging is local, so they come at once.
_PURGE_REPORTS_SECONDS = 10.0


class RenewableProducer:
    """A ``confluent_kafka.Producer`` behind a :class:`RenewableClient` handle, replaced without losing or
    reordering its records: the handle's renew hook purges the old producer and sends again what it held.

    Usage::

        kafka = RenewableProducer(config)
        kafka.produce(topic, key=k, value=v, partition=p, on_delivery=cb)
        kafka.producer.poll(0)
        kafka.renew_if_orphaned(time.monotonic())
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self._wrapped: dict[int, DeliveryCallback] = {}
        self._purged: list[tuple[Message, DeliveryCallback, str]] = []
        self.kafka = RenewableClient("generator-producer", config, Producer, on_renew=self._hand_over)

    @property
    def producer(self) -> Producer:
        """The current producer (a renewal replaces it: ask again at each use)."""
        return self.kafka.client

    def renew_if_orphaned(self, now: float) -> bool:
        """Replace the producer if it has held no broker long enough (``kafka_health``)."""
        return self.kafka.renew_if_orphaned(now)

    def renew(self) -> None:
        """Replace the producer; what the old one held goes to the new one, in order."""
        self.kafka.renew("held no broker")

    def produce(
        self, topic: str, *, key: bytes, value: bytes, partition: int, on_delivery: DeliveryCallback
    ) -> None:
        """``Producer.produce``; raises ``BufferError`` when the client's queue is full."""
        self.producer.produce(
            topic, value=value, key=key, partition=partition, on_delivery=self._wrap(on_delivery)
        )

    def _wrap(self, callback: DeliveryCallback) -> DeliveryCallback:
        # One wrapper per callback (the generator has one per record kind), not one per record.
        key = id(callback)
        if key not in self._wrapped:
            self._wrapped[key] = self._keeping_purged(callback)
        return self._wrapped[key]

    def _keeping_purged(self, callback: DeliveryCallback) -> DeliveryCallback:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            state = _PURGED.get(err.code()) if err is not None else None
            if state is None:
                callback(err, msg)
            else:  # renew() hands it to the next producer
                self._purged.append((msg, on_delivery, state))

        return on_delivery

    def _hand_over(self, old: Producer, new: Producer) -> None:
        """The renew hook: purge ``old``, then hand what it held to ``new`` in order."""
        old.purge(in_queue=True, in_flight=True, blocking=True)
        deadline = time.monotonic() + _PURGE_REPORTS_SECONDS
        while len(old) and time.monotonic() < deadline:
            old.poll(0.1)
        left = len(old)
        moved = {"unsent": 0, "in_flight": 0}
        for msg, callback, state in self._purged:
            _resend(new, msg, callback)
            moved[state] += 1
            RESENT.labels(state).inc()
        self._purged.clear()
        logger.log(
            logging.ERROR if left else logging.WARNING,
            "producer_renewed",
            extra={
                "resent_unsent": moved["unsent"],
                "resent_in_flight": moved["in_flight"],
                "unreported": left,
            },
        )


def _resend(producer: Producer, msg: Message, callback: DeliveryCallback) -> None:
    topic, partition = msg.topic(), msg.partition()
    assert topic is not None and partition is not None  # set on every produced record
    while True:
        try:
            producer.produce(
                topic, value=msg.value(), key=msg.key(), partition=partition, on_delivery=callback
            )
            return
        except BufferError:
            # The new queue is as large as the old one was, so this only waits for room.
            producer.poll(0.1)
