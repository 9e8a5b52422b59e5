"""One Spark task of the Python Kafka source: exactly the records ``[start, end)`` of one topic partition,
read with confluent-kafka and handed to Spark as Arrow batches (:func:`read_range`), or as the messages
themselves to a task that uses them without Spark (:func:`read_messages`: the in-source copy of
:mod:`streamwatch_common.spark.kafka_copy`).

Runs in Spark's Python workers; the planner (:mod:`streamwatch_common.spark.kafka_source`) decides the
ranges.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from pyspark.sql.datasource import InputPartition

from streamwatch_common.errors import SourceError
from streamwatch_common.spark.kafka_broker_wait import BROKER_WAIT_S, RenewableConsumer, watermark_offsets

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

_ARROW_BATCH_ROWS = 10_000
#: librdkafka's own ``queued.min.messages``: the most a task's bound (:func:`prefetch_bounded`) may ask for.
_LIBRDKAFKA_QUEUED_MIN_MESSAGES = 100_000


class KafkaRange(InputPartition):
    """One Spark task's work: records ``[start, end)`` of one topic partition."""

    def __init__(self, topic: str, partition: int, start: int, end: int) -> None:
        super().__init__((topic, partition, start, end))
        self.topic = topic
        self.partition = partition
        self.start = start
        self.end = end

    @staticmethod
    def of(partition: InputPartition) -> KafkaRange:
        """``partition`` as the range Spark was given by the planner (the readers' ``read`` argument)."""
        if not isinstance(partition, KafkaRange):
            raise SourceError(f"unexpected input partition {partition!r}")
        return partition


def read_range(
    config: Mapping[str, Any], task: KafkaRange, fail_on_data_loss: bool = True
) -> Iterator[pa.RecordBatch]:
    """Exactly the records ``[task.start, task.end)`` of one partition, as Arrow batches."""
    columns = _Columns()
    for messages in read_messages(config, task, fail_on_data_loss):
        columns.extend(messages)
        if len(columns.offsets) >= _ARROW_BATCH_ROWS:
            yield columns.record_batch(task)
            columns = _Columns()
    if columns.offsets:
        yield columns.record_batch(task)


def read_messages(
    config: Mapping[str, Any], task: KafkaRange, fail_on_data_loss: bool = True
) -> Iterator[list[Message]]:
    """Exactly the records ``[task.start, task.end)`` of one partition, in offset order, as lists of
    confluent-kafka messages (records only: no error or end-of-partition event, nothing past the end).

    Records deleted by retention before being read fail the task with ``fail_on_data_loss``, else are
    skipped with a warning; a broker restart is waited out (:mod:`.kafka_broker_wait`)."""
    client = RenewableConsumer(prefetch_bounded(config, task.end - task.start))
    try:
        tp = TopicPartition(task.topic, task.partition)
        low, _high = watermark_offsets(client, tp)
        start = task.start
        if low > start:
            message = (
                f"{task.topic}/{task.partition}: offsets {start}..{low - 1} were deleted before being read"
            )
            if fail_on_data_loss:
                raise SourceError(message + " (failOnDataLoss=true)")
            logger.warning("kafka_source_data_loss", extra={"topic": task.topic, "partition": task.partition})
            start = low
        if start >= task.end:
            return
        consumer = client.get()
        consumer.assign([TopicPartition(task.topic, task.partition, start)])
        yield from _chunks(consumer, task, start)
    finally:
        client.close()


def prefetch_bounded(config: Mapping[str, Any], records: int) -> dict[str, Any]:
    """``config`` for a consumer that reads ``records`` records and closes: librdkafka prefetches up to
    ``queued.min.messages`` per partition (far more than a micro-batch task reads), and every record it
    fetched past the range was decoded and built only to be dropped at close: a large share of the read
    tasks' CPU (``bench/README.md``, the visits writer's notes). A value the user set is kept."""
    if "queued.min.messages" in config:
        return dict(config)
    return {**config, "queued.min.messages": max(1, min(records, _LIBRDKAFKA_QUEUED_MIN_MESSAGES))}


class _Columns:
    """The records of one Arrow batch being collected, column by column."""

    def __init__(self) -> None:
        self.keys: list[bytes | None] = []
        self.values: list[bytes | None] = []
        self.offsets: list[int] = []
        self.timestamps: list[int | None] = []

    def extend(self, messages: list[Message]) -> None:
        """Take records (see :func:`read_messages`).

        Column by column: the record loop's per-field appends were among the reader's top costs (py-spy)."""
        self.keys.extend([m.key() for m in messages])
        self.values.extend([m.value() for m in messages])
        self.offsets.extend([m.offset() for m in messages])  # type: ignore[misc]  # records have offsets
        self.timestamps.extend([ts if kind else None for kind, ts in (m.timestamp() for m in messages)])

    def record_batch(self, task: KafkaRange) -> pa.RecordBatch:
        # Column-wise conversion: building a datetime per record costs more than reading it from Kafka.
        import pyarrow as pa

        n = len(self.offsets)
        return pa.RecordBatch.from_arrays(
            [
                pa.array(self.keys, pa.binary()),
                pa.array(self.values, pa.binary()),
                pa.repeat(pa.scalar(task.topic, pa.string()), n),
                pa.repeat(pa.scalar(task.partition, pa.int32()), n),
                pa.array(self.offsets, pa.int64()),
                pa.array(self.timestamps, pa.int64())
                .cast(pa.timestamp("ms", tz="UTC"))
                .cast(pa.timestamp("us", tz="UTC")),
            ],
            schema=arrow_schema(),
        )


def _plain(messages: list[Message], end: int) -> bool:
    """No error or end-of-partition event among ``messages`` and none at or past ``end``."""
    last = messages[-1].offset()
    return last is not None and last < end and all(m.error() is None for m in messages)


def _in_range(messages: list[Message], task: KafkaRange, position: int) -> tuple[list[Message], int]:
    """The general case: events, gaps and records past the end among ``messages``; the records in the
    range and the next offset to read (``task.end`` once the range is done)."""
    records: list[Message] = []
    for msg in messages:
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                # Offsets up to the end can be missing for good (transaction markers, compaction).
                if (msg.offset() or 0) >= task.end:
                    position = task.end
                continue
            raise SourceError(f"{task.topic}/{task.partition}: consume failed: {error}")
        offset = msg.offset()
        if offset is None or offset >= task.end:
            return records, task.end
        records.append(msg)
        position = offset + 1
    return records, position


def _chunks(consumer: Consumer, task: KafkaRange, start: int) -> Iterator[list[Message]]:
    position = start
    last_progress = time.monotonic()
    while position < task.end:
        messages = consumer.consume(min(_ARROW_BATCH_ROWS, task.end - position), timeout=1.0)
        if messages and _plain(messages, task.end):
            records = messages
            position = messages[-1].offset() + 1  # type: ignore[operator]  # _plain checked it
        else:
            records, position = _in_range(messages, task, position)
        if messages:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > BROKER_WAIT_S:
            raise SourceError(
                f"{task.topic}/{task.partition}: no records for {BROKER_WAIT_S:.0f}s at offset "
                f"{position}, expected up to {task.end}"
            )
        if records:
            yield records


def arrow_schema() -> pa.Schema:
    """The Kafka columns as a read task yields them (the source's ``SCHEMA`` in Arrow)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("key", pa.binary()),
            ("value", pa.binary()),
            ("topic", pa.string()),
            ("partition", pa.int32()),
            ("offset", pa.int64()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
        ]
    )
