"""One Spark task of the Python Kafka source: exactly the records ``[start, end)`` of one topic partition,
read with confluent-kafka and handed to Spark as Arrow batches.

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


class KafkaRange(InputPartition):
    """One Spark task's work: records ``[start, end)`` of one topic partition."""

    def __init__(self, topic: str, partition: int, start: int, end: int) -> None:
        super().__init__((topic, partition, start, end))
        self.topic = topic
        self.partition = partition
        self.start = start
        self.end = end


def read_range(
    config: Mapping[str, Any], task: KafkaRange, fail_on_data_loss: bool = True
) -> Iterator[pa.RecordBatch]:
    """Exactly the records ``[task.start, task.end)`` of one partition, as Arrow batches."""
    client = RenewableConsumer(config)
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
        yield from _batches(consumer, task, start)
    finally:
        client.close()


class _Columns:
    """The records of one Arrow batch being collected, column by column."""

    def __init__(self) -> None:
        self.keys: list[bytes | None] = []
        self.values: list[bytes | None] = []
        self.offsets: list[int] = []
        self.timestamps: list[int | None] = []

    def extend(self, messages: list[Message]) -> int:
        """Take records known to be plain (see :func:`_plain`); returns the next offset to read.

        Column by column: the record loop's per-field appends were among the reader's top costs (py-spy)."""
        self.keys.extend([m.key() for m in messages])
        self.values.extend([m.value() for m in messages])
        self.offsets.extend([m.offset() for m in messages])  # type: ignore[misc]  # _plain checked them
        self.timestamps.extend([ts if kind else None for kind, ts in (m.timestamp() for m in messages)])
        return self.offsets[-1] + 1

    def append(self, msg: Message, offset: int) -> None:
        kind, ts = msg.timestamp()
        self.keys.append(msg.key())
        self.values.append(msg.value())
        self.offsets.append(offset)
        self.timestamps.append(ts if kind else None)

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
            schema=_arrow_schema(),
        )


def _plain(messages: list[Message], end: int) -> bool:
    """No error or end-of-partition event among ``messages`` and none at or past ``end``."""
    last = messages[-1].offset()
    return last is not None and last < end and all(m.error() is None for m in messages)


def _one_by_one(messages: list[Message], task: KafkaRange, columns: _Columns, position: int) -> int:
    """The general case: events, gaps and records past the end among ``messages``; returns the next
    offset to read (``task.end`` once the range is done)."""
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
            return task.end
        columns.append(msg, offset)
        position = offset + 1
    return position


def _batches(consumer: Consumer, task: KafkaRange, start: int) -> Iterator[pa.RecordBatch]:
    columns = _Columns()
    position = start
    last_progress = time.monotonic()
    while position < task.end:
        messages = consumer.consume(min(_ARROW_BATCH_ROWS, task.end - position), timeout=1.0)
        if messages and _plain(messages, task.end):
            position = columns.extend(messages)
        else:
            position = _one_by_one(messages, task, columns, position)
        if messages:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > BROKER_WAIT_S:
            raise SourceError(
                f"{task.topic}/{task.partition}: no records for {BROKER_WAIT_S:.0f}s at offset "
                f"{position}, expected up to {task.end}"
            )
        if len(columns.offsets) >= _ARROW_BATCH_ROWS or (position >= task.end and columns.offsets):
            yield columns.record_batch(task)
            columns = _Columns()


def _arrow_schema() -> pa.Schema:
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
