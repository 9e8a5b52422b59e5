"""The Python Kafka source's clients: they wait out a broker restart instead of failing the micro-batch.

librdkafka answers "all brokers down" at once where Spark's JVM consumer blocks until the broker is back,
so the planner's offset look-ups and a task's reads retry with back-off, on a fresh consumer, for
:data:`BROKER_WAIT_S`, and fail at once on what no wait can mend (credentials, authorization). A refused
SASL handshake reaches only the client's error callback, the look-up itself failing as if no broker
answered: it is checked after each failure, so a wrong password fails at once instead of being waited out.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streamwatch_common.backoff import Backoff

logger = logging.getLogger(__name__)
T = TypeVar("T")

METADATA_TIMEOUT_S = 15.0
# How long a restarting broker is waited for: by offset look-ups before the batch fails, and by a task
# whose records stop arriving before it fails instead of hanging the micro-batch forever.
BROKER_WAIT_S = 120.0
# A broker restart shows a client many faces (all brokers down, transport errors, partitions without a
# leader or unknown to a client that connected meanwhile, destroyed broker handles): any error is waited
# out, except those no wait can mend.
HOPELESS = {
    KafkaError._AUTHENTICATION,
    KafkaError._SSL,
    KafkaError._INVALID_ARG,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


def transient(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and not error.fatal() and error.code() not in HOPELESS


class RenewableConsumer:
    """A consumer made on first use and replaced after a transient failure: one that connected while the
    broker restarted can keep metadata without the topic's partitions until its next refresh, minutes on."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self._consumer: Consumer | None = None
        self._hopeless: KafkaError | None = None

    def get(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer({**consumer_config(self.config), "error_cb": self._on_error})
        return self._consumer

    def hopeless_error(self) -> KafkaError | None:
        """An error no wait can mend that the client reported on its own (a refused SASL handshake): the
        failed request itself says only that no broker answered."""
        if self._consumer is not None and not self._consumer.assignment():
            self._consumer.poll(0)  # serves the error callback; with nothing assigned, consumes nothing
        return self._hopeless

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal() or error.code() in HOPELESS:
            self._hopeless = error

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def while_brokers_down(call: Callable[[Consumer], T], client: RenewableConsumer, what: str) -> T:
    """``call(consumer)``, retried with back-off and a fresh consumer while the brokers are unreachable or
    not yet serving the partition (a restart, a network blip)."""
    deadline = time.monotonic() + BROKER_WAIT_S
    backoff = Backoff(first=0.2, maximum=5.0)
    while True:
        try:
            return call(client.get())
        except KafkaException as exc:
            if not transient(exc) or time.monotonic() >= deadline:
                raise
            if (hopeless := client.hopeless_error()) is not None:
                raise KafkaException(hopeless) from exc
            client.close()
            delay = backoff.next_delay()
            logger.warning(
                "kafka_source_brokers_unavailable",
                extra={"what": what, "error": str(exc), "retry_in_seconds": delay},
            )
            time.sleep(delay)


def consumer_config(config: Mapping[str, Any]) -> dict[str, Any]:
    # The group id is never joined or committed (assign + seek only) but librdkafka wants one.
    return {
        "group.id": f"streamwatch-source-{uuid.uuid4().hex[:12]}",
        **config,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
    }


def topic_metadata(topic: str) -> Callable[[Consumer], Any]:
    return lambda consumer: consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)


def watermark_offsets(client: RenewableConsumer, tp: TopicPartition) -> tuple[int, int]:
    low, high = while_brokers_down(
        lambda c: c.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT_S),
        client,
        f"watermarks of {tp.topic}/{tp.partition}",
    )
    return int(low), int(high)
