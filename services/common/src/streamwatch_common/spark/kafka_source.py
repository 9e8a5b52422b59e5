"""A Kafka streaming source for PySpark written with the Python Data Source API and confluent-kafka.

The ``python`` connector, the jobs' default (the README's performance section has the numbers it was
chosen by); Spark's own ``format("kafka")`` is the ``jvm`` one. Offsets have the shape of Spark's own
Kafka source, ``{"visits": {"0": 13200, "1": 15800}}``, and that JSON is the last line of
``<checkpoint>/offsets/N``, so a checkpoint reader works for either. This module plans the micro-batches
(offsets, read limits, ranges); :mod:`.kafka_range_read` reads a range in a task and
:mod:`.kafka_broker_wait` keeps both waiting through a broker restart. The ``streamwatch_kafka_copy``
format (:mod:`.kafka_copy`, the passthrough's default) plans with this reader and copies each range to a
target topic in the task instead of returning it.

Usage::

    register_kafka_source(spark)
    df = (
        spark.readStream.format("streamwatch_kafka")
        .option("kafka.bootstrap.servers", "kafka:9092")
        .option("subscribe", "visits")
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", "10000")
        .load()
    )

Options (Spark's Kafka option names, so one options dict serves both connectors):

- ``kafka.bootstrap.servers`` (required) and any other ``kafka.<librdkafka property>``;
  ``kafkaProperties``: a JSON object of more librdkafka properties;
- ``subscribe``: comma-separated topics;
- ``startingOffsets``: ``earliest`` (default), ``latest`` or JSON ``{"topic": {"0": 42}}`` where -2 means
  earliest and -1 latest; partitions missing from the JSON start at the earliest offset;
- ``maxOffsetsPerTrigger``: at most this many records per micro-batch, shared across partitions in
  proportion to their backlog (ignored when Spark asks for everything, e.g. ``Trigger.AvailableNow``
  caps at the offsets seen when the query started instead);
- ``failOnDataLoss``: ``true`` (default) fails the batch when records it must read were deleted by
  retention; ``false`` reads what is left;
- not ``fetchOffset.numRetries`` and ``fetchOffset.retryIntervalMs``, refused here: each planner
  look-up waits out an unreachable broker in one loop (:func:`while_brokers_down`, up to
  :data:`BROKER_WAIT_S`) and fails at once on what no wait can mend, so a count of retries around that
  wait would mean something else than in Spark's own source.

The module is imported by Spark's Python workers (it is part of the installed package); the reader holds
no client in its picklable state, clients are opened where they are used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaException, TopicPartition
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import StructType

from streamwatch_common.errors import SourceError
from streamwatch_common.spark.batch_metrics import Offsets
from streamwatch_common.spark.kafka_broker_wait import (
    RenewableConsumer,
    topic_metadata,
    watermark_offsets,
    while_brokers_down,
)
from streamwatch_common.spark.kafka_range_read import KafkaRange, read_range
from streamwatch_common.spark.kafka_source_options import EARLIEST, LATEST, SourceOptions

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

FORMAT_NAME = "streamwatch_kafka"
SCHEMA = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"


def register_kafka_source(spark: SparkSession) -> None:
    """Make ``spark.readStream.format("streamwatch_kafka")`` available in this session."""
    spark.dataSource.register(KafkaDataSource)


def split_read_limit(start: Offsets, latest: Offsets, max_rows: int) -> Offsets:
    """End offsets that admit at most ``max_rows`` records, shared by backlog so no partition starves."""
    backlog = {
        (t, p): max(0, end - start.get(t, {}).get(p, end))
        for t, parts in latest.items()
        for p, end in parts.items()
    }
    total = sum(backlog.values())
    take = dict(backlog)
    if total > max_rows:
        take = {tp: n * max_rows // total for tp, n in backlog.items()}
        remainder = max_rows - sum(take.values())
        # Largest leftovers first; ties broken by topic/partition so the split is deterministic.
        for tp in sorted(backlog, key=lambda k: (take[k] - backlog[k], k)):
            if remainder == 0:
                break
            if take[tp] < backlog[tp]:
                take[tp] += 1
                remainder -= 1
    result: Offsets = {}
    for t, parts in latest.items():
        for p, end in parts.items():
            begin = start.get(t, {}).get(p, end)
            result.setdefault(t, {})[p] = begin + take[(t, p)] if end > begin else begin
    return result


class KafkaDataSource(DataSource):
    """The ``streamwatch_kafka`` format: Kafka topics as a streaming DataFrame."""

    @classmethod
    def name(cls) -> str:
        return FORMAT_NAME

    def schema(self) -> str:
        return SCHEMA

    def streamReader(self, schema: StructType) -> KafkaStreamReader:
        return KafkaStreamReader(dict(self.options))


class KafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Plans micro-batches from broker watermarks and reads each partition range in its own task."""

    def __init__(self, options: dict[str, str]) -> None:
        parsed = SourceOptions.parse(options)
        self.config = parsed.config
        self.topics = parsed.topics
        self.starting = parsed.starting
        self.max_rows = parsed.max_rows
        self.fail_on_data_loss = parsed.fail_on_data_loss
        self._available_now_target: Offsets | None = None
        self._metadata = RenewableConsumer(self.config)

    # Spark pickles the reader to ship read() to executors: never ship a live client.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_metadata"] = RenewableConsumer(self.config)
        return state

    # --- driver side: planning ----------------------------------------------------------------------

    def _watermarks(self) -> dict[str, dict[str, tuple[int, int]]]:
        # Each look-up already waits out a broker restart; what is left is an error no wait can mend.
        try:
            return self._fetch_watermarks()
        except KafkaException as exc:
            self.stop()  # the next plan starts with a fresh client
            raise SourceError(f"offsets of {self.topics} unavailable: {exc}") from exc

    def _fetch_watermarks(self) -> dict[str, dict[str, tuple[int, int]]]:
        result: dict[str, dict[str, tuple[int, int]]] = {}
        for topic in self.topics:
            listed = while_brokers_down(topic_metadata(topic), self._metadata, f"metadata of {topic}")
            meta = listed.topics.get(topic)
            if meta is None or meta.error is not None:
                # A topic that does not exist yet has no records; it is picked up once it appears.
                logger.warning(
                    "kafka_source_topic_unavailable",
                    extra={"topic": topic, "error": str(meta and meta.error)},
                )
                continue
            result[topic] = {
                str(p): watermark_offsets(self._metadata, TopicPartition(topic, p))
                for p in sorted(meta.partitions)
            }
        return result

    def _resolve(self, wanted: Offsets | None, default: int) -> Offsets:
        """Concrete offsets for every current partition; -2/-1 and missing entries resolved now."""
        resolved: Offsets = {}
        for topic, parts in self._watermarks().items():
            for p, (low, high) in parts.items():
                offset = (wanted or {}).get(topic, {}).get(p, default)
                if offset == EARLIEST:
                    offset = low
                elif offset == LATEST:
                    offset = high
                resolved.setdefault(topic, {})[p] = offset
        return resolved

    def initialOffset(self) -> Offsets:
        if self.starting == "earliest":
            return self._resolve(None, EARLIEST)
        if self.starting == "latest":
            return self._resolve(None, LATEST)
        assert isinstance(self.starting, dict)
        return self._resolve(self.starting, EARLIEST)

    def _latest(self, start: Offsets) -> Offsets:
        latest: Offsets = {}
        for topic, parts in self._watermarks().items():
            for p, (low, high) in parts.items():
                begin = start.get(topic, {}).get(p)
                # A partition new since the last batch starts at its earliest record.
                latest.setdefault(topic, {})[p] = max(high, begin if begin is not None else low)
        target = self._available_now_target
        if target is not None:
            # Trigger.AvailableNow: never beyond what existed when the query started.
            for topic, offsets in latest.items():
                for p, newest in offsets.items():
                    floor = start.get(topic, {}).get(p, 0)
                    offsets[p] = max(min(newest, target.get(topic, {}).get(p, floor)), floor)
        return latest

    def latestOffset(self, start: Offsets, limit: ReadLimit) -> Offsets:
        latest = self._latest(start)
        # Partitions the start does not know yet begin at their earliest offset.
        full_start = {t: dict(start.get(t, {})) for t in latest}
        for topic, parts in latest.items():
            for p in parts:
                if p not in full_start[topic]:
                    full_start[topic][p] = self._low_watermark(topic, p)
        if isinstance(limit, ReadMaxRows):
            end = split_read_limit(full_start, latest, limit.max_rows)
        else:
            end = latest
        # Keep partitions that only exist in the start (e.g. a deleted topic) so offsets never go back.
        for topic, parts in start.items():
            for p, offset in parts.items():
                end.setdefault(topic, {}).setdefault(p, offset)
        return end

    def _low_watermark(self, topic: str, partition: str) -> int:
        low, _high = watermark_offsets(self._metadata, TopicPartition(topic, int(partition)))
        return int(low)

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxRows(self.max_rows) if self.max_rows else ReadAllAvailable()

    def reportLatestOffset(self) -> Offsets | None:
        return {t: {p: high for p, (_low, high) in parts.items()} for t, parts in self._watermarks().items()}

    def prepareForTriggerAvailableNow(self) -> None:
        self._available_now_target = {
            t: {p: high for p, (_low, high) in parts.items()} for t, parts in self._watermarks().items()
        }
        logger.info("kafka_source_available_now_target", extra={"target": self._available_now_target})

    def partitions(self, start: Offsets, end: Offsets) -> Sequence[KafkaRange]:
        ranges = []
        for topic, parts in sorted(end.items()):
            for p, stop in sorted(parts.items(), key=lambda kv: int(kv[0])):
                begin = start.get(topic, {}).get(p)
                if begin is None:
                    begin = self._low_watermark(topic, p)
                if stop > begin:
                    ranges.append(KafkaRange(topic, int(p), begin, stop))
        return ranges

    def commit(self, end: Offsets) -> None:
        # Progress lives in Spark's checkpoint, not in a consumer group: nothing to do on the broker.
        logger.debug("kafka_source_commit", extra={"end": end})

    def stop(self) -> None:
        self._metadata.close()

    # --- executor side: reading ---------------------------------------------------------------------
    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        return read_range(self.config, KafkaRange.of(partition), self.fail_on_data_loss)
