"""A Kafka streaming source for PySpark written with the Python Data Source API and confluent-kafka.

The ``python`` connector, the jobs' default (the README's performance section has the numbers it was
chosen by); Spark's own ``format("kafka")`` is the ``jvm`` one. Offsets have the shape of Spark's own
Kafka source, ``{"visits": {"0": 13200, "1": 15800}}``, and that JSON is the last line of
``<checkpoint>/offsets/N``, so a checkpoint reader works for either. This module plans the micro-batches
(offsets, read limits, ranges); :mod:`.kafka_range_read` reads a range in a task and
:mod:`.kafka_broker_wait` keeps both waiting through a broker restart.

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
- ``fetchOffset.numRetries`` (default 3) and ``fetchOffset.retryIntervalMs`` (default 1000): how often
  the planner retries a failed metadata/watermark request before the query fails.

The module is imported by Spark's Python workers (it is part of the installed package); the reader holds
no client in its picklable state, clients are opened where they are used.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
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

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

FORMAT_NAME = "streamwatch_kafka"
SCHEMA = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"

EARLIEST = -2
LATEST = -1


def register_kafka_source(spark: SparkSession) -> None:
    """Make ``spark.readStream.format("streamwatch_kafka")`` available in this session."""
    spark.dataSource.register(KafkaDataSource)


def client_config(options: Mapping[str, str]) -> dict[str, Any]:
    """librdkafka configuration from the source options (``kafka.*`` and the ``kafkaProperties`` JSON)."""
    config: dict[str, Any] = {}
    raw = options.get("kafkaproperties") or options.get("kafkaProperties")
    if raw:
        extra = json.loads(raw)
        if not isinstance(extra, dict):
            raise SourceError("option kafkaProperties must be a JSON object")
        config.update(extra)
    for key, value in options.items():
        if key.lower().startswith("kafka."):
            config[key[len("kafka.") :]] = value
    if not config.get("bootstrap.servers"):
        raise SourceError("option kafka.bootstrap.servers is required")
    return config


def parse_starting_offsets(value: str) -> str | Offsets:
    """``earliest``, ``latest`` or the JSON offsets (partition keys as strings)."""
    text = value.strip()
    if text.lower() in ("earliest", "latest"):
        return text.lower()
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise SourceError(f"startingOffsets: not earliest, latest or JSON: {value!r}") from exc
    if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
        raise SourceError(f'startingOffsets JSON must look like {{"topic": {{"0": 42}}}}: {value!r}')
    return {str(t): {str(p): int(o) for p, o in parts.items()} for t, parts in parsed.items()}


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
        lowered = {k.lower(): v for k, v in options.items()}
        self.config = client_config(lowered)
        topics = [t.strip() for t in lowered.get("subscribe", "").split(",") if t.strip()]
        if not topics:
            raise SourceError("option subscribe (comma-separated topics) is required")
        self.topics = topics
        self.starting = parse_starting_offsets(lowered.get("startingoffsets", "earliest"))
        max_rows = lowered.get("maxoffsetspertrigger")
        self.max_rows = int(max_rows) if max_rows not in (None, "", "0") else None
        if self.max_rows is not None and self.max_rows < 0:
            raise SourceError(f"maxOffsetsPerTrigger must be positive: {max_rows!r}")
        self.fail_on_data_loss = lowered.get("failondataloss", "true").lower() != "false"
        self.fetch_retries = int(lowered.get("fetchoffset.numretries", "3"))
        self.fetch_retry_interval_s = int(lowered.get("fetchoffset.retryintervalms", "1000")) / 1000
        self._available_now_target: Offsets | None = None
        self._metadata = RenewableConsumer(self.config)

    # Spark pickles the reader to ship read() to executors: never ship a live client.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_metadata"] = RenewableConsumer(self.config)
        return state

    # --- driver side: planning ----------------------------------------------------------------------

    def _watermarks(self) -> dict[str, dict[str, tuple[int, int]]]:
        # A broker blip should cost a retry, not the whole query (Spark's own source retries too).
        for attempt in range(self.fetch_retries + 1):
            try:
                return self._fetch_watermarks()
            except KafkaException as exc:
                if attempt >= self.fetch_retries:
                    raise SourceError(f"offsets of {self.topics} unavailable: {exc}") from exc
                logger.warning(
                    "kafka_source_offsets_retry", extra={"attempt": attempt + 1, "error": str(exc)}
                )
                self.stop()  # a fresh client on the next attempt
                time.sleep(self.fetch_retry_interval_s)
        raise AssertionError("unreachable")

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
        if not isinstance(partition, KafkaRange):
            raise SourceError(f"unexpected input partition {partition!r}")
        return read_range(self.config, partition, self.fail_on_data_loss)
