"""Write a micro-batch to a Kafka topic from ``foreachBatch``, one producer per Spark partition.

Replaces the JVM ``format("kafka")`` sink. The producer is idempotent (a librdkafka retry never writes a
record twice) and every partition task waits for all delivery reports: one failed delivery fails the task,
so Spark fails the batch and retries it from the checkpoint instead of losing records. A replayed batch
may write records again (at-least-once on the Kafka output); readers that need exactly-once dedupe on the
source partition/offset, which the writer keeps aligned by writing row ``partition`` to that partition.

Usage::

    writer = kafka_batch_writer("processed_visits", settings.producer_config())
    df.writeStream.foreachBatch(writer).option("checkpointLocation", path).start()
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streamwatch_common.errors import SinkError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row

logger = logging.getLogger(__name__)

_FLUSH_TIMEOUT_S = 120.0
_QUEUE_FULL_WAIT_S = 0.5


class KafkaWriteError(SinkError):
    """Some records of a batch were not acknowledged by the brokers."""


def kafka_batch_writer(
    topic: str,
    producer_config: Mapping[str, Any],
    keep_partition: bool = True,
) -> Callable[[DataFrame, int], int]:
    """A ``foreachBatch`` function writing columns ``key``, ``value`` (and ``partition``) to ``topic``.

    With ``keep_partition`` a row's ``partition`` column chooses its output partition (the topic must
    have at least as many partitions); otherwise the producer's partitioner hashes the key. The function
    returns the number of records written (Spark ignores it; callers wrapping it can log it).
    """
    config = {"enable.idempotence": True, "acks": "all", **producer_config}

    def write_batch(batch_df: DataFrame, batch_id: int) -> int:
        columns = ["key", "value", *(["partition"] if keep_partition else [])]
        written = batch_df.sparkSession.sparkContext.accumulator(0)

        def write_partition(rows: Iterable[Row]) -> None:
            written.add(write_rows(rows, topic, config, keep_partition))

        batch_df.select(*columns).foreachPartition(write_partition)
        logger.info(
            "kafka_batch_written", extra={"topic": topic, "batch_id": batch_id, "records": written.value}
        )
        return int(written.value)

    return write_batch


def write_rows(
    rows: Iterable[Row | tuple[Any, ...]], topic: str, config: Mapping[str, Any], keep_partition: bool
) -> int:
    """Produce every row and wait for all acknowledgements; raise if any record was not delivered."""
    producer = Producer(dict(config))
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, msg: Message) -> None:
        if error is not None:
            failures.append(f"{msg.topic()}/{msg.partition()}: {error}")

    sent = 0
    for row in rows:
        kwargs: dict[str, Any] = {"key": row[0], "value": row[1], "on_delivery": on_delivery}
        if keep_partition and row[2] is not None:
            kwargs["partition"] = int(row[2])
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                # Local queue full: serve delivery reports until there is room again.
                producer.poll(_QUEUE_FULL_WAIT_S)
            except KafkaException as exc:
                producer.flush(_FLUSH_TIMEOUT_S)
                raise KafkaWriteError(
                    f"writing to {topic} partition {kwargs.get('partition')} refused: {exc}"
                ) from exc
        sent += 1
        producer.poll(0)
    remaining = producer.flush(_FLUSH_TIMEOUT_S)
    if remaining:
        failures.append(f"{remaining} records still unacknowledged after {_FLUSH_TIMEOUT_S:.0f}s")
    if failures:
        raise KafkaWriteError(f"writing to {topic} failed for {len(failures)} records; first: {failures[0]}")
    return sent
