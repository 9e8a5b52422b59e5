"""The generator's producer, replaced by a new one when it holds no broker at all.

A producer can lose every broker handle during the broker's controlled shutdown and never get one back
(``streamwatch_common.kafka_health``). :meth:`RenewableProducer.renew` purges what the old producer still
holds and hands those records, in their order and with their callbacks, to a new producer; each carries
the time it is sent again (librdkafka reports no timestamp for a purged record).
A record purged while in flight may already be in the topic, so it can be written twice; it is counted
apart (``generator_records_resent_total{state="in_flight"}``). A producer that held no broker had no
request in flight, so that count stays 0 in the case this exists for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import Counter

from streamwatch_common.kafka_health import BrokerLoss

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
    """A ``confluent_kafka.Producer`` that can be replaced without losing or reordering its records.

    Usage::

        kafka = RenewableProducer(config)
        kafka.produce(topic, key=k, value=v, partition=p, on_delivery=cb)
        kafka.producer.poll(0)
        if kafka.loss.orphaned(time.monotonic()):
            kafka.renew()
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.loss = BrokerLoss("generator-producer")
        self._config = config
        self.producer = Producer(self.loss.configure(config))
        self._wrapped: dict[int, DeliveryCallback] = {}
        self._purged: list[tuple[Message, DeliveryCallback, str]] = []

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

    def renew(self) -> None:
        """Replace the producer; what the old one held goes to the new one, in order."""
        old = self.producer
        old.purge(in_queue=True, in_flight=True, blocking=True)
        deadline = time.monotonic() + _PURGE_REPORTS_SECONDS
        while len(old) and time.monotonic() < deadline:
            old.poll(0.1)
        left = len(old)
        self.producer = Producer(self.loss.configure(self._config))
        moved = {"unsent": 0, "in_flight": 0}
        for msg, callback, state in self._purged:
            self._resend(msg, callback)
            moved[state] += 1
            RESENT.labels(state).inc()
        self._purged.clear()
        self.loss.renewed("held no broker")
        logger.log(
            logging.ERROR if left else logging.WARNING,
            "producer_renewed",
            extra={
                "resent_unsent": moved["unsent"],
                "resent_in_flight": moved["in_flight"],
                "unreported": left,
            },
        )

    def _resend(self, msg: Message, callback: DeliveryCallback) -> None:
        topic, partition = msg.topic(), msg.partition()
        assert topic is not None and partition is not None  # set on every produced record
        while True:
            try:
                self.producer.produce(
                    topic,
                    value=msg.value(),
                    key=msg.key(),
                    partition=partition,
                    on_delivery=callback,
                )
                return
            except BufferError:
                # The new queue is as large as the old one was, so this only waits for room.
                self.producer.poll(0.1)
