"""The produce loop: pace, build each row, hand it to the producer, report progress, flush on stop."""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import KafkaError, Producer
from prometheus_client import Counter

from streamwatch_common.errors import ConfigurationError
from streamwatch_common.kafka import LibrdkafkaLog
from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_generator.plan import KindChooser, PartitionChooser, partition_for
from streamwatch_generator.producer import RenewableProducer
from streamwatch_generator.records import VisitFactory, encode
from streamwatch_generator.settings import GeneratorSettings
from streamwatch_generator.tally import DeliveryTally

logger = logging.getLogger(__name__)

CLIENT_ERRORS = Counter(
    "generator_client_errors_total",
    "Errors the Kafka client reported outside of a delivery (e.g. broker down).",
)

DELIVERY_STALLS = Counter(
    "generator_delivery_stalls_total",
    "Times records were in flight with no delivery report for GENERATOR_DELIVERY_STALL_SECONDS.",
)

# Records kept per partition for duplicates to repeat: recent enough to land in the same observation window.
_RECENT = 1000
# At full speed the loop hands this many records to the client between two looks at the clock.
_CHUNK = 500


class VisitsGenerator:
    """Produces synthetic visits to the topic until the total is reached or shutdown is requested.

    Usage::

        generator = VisitsGenerator(settings, shutdown)
        OpsServer(host, port, ready=generator.ready).start()
        exit_code = generator.run()
    """

    def __init__(self, settings: GeneratorSettings, shutdown: GracefulShutdown) -> None:
        self.settings = settings
        self.shutdown = shutdown
        self.seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**63)
        self._rng = random.Random(self.seed)
        self._factory = VisitFactory(self._rng)
        self._kinds = KindChooser(settings)
        # librdkafka's own log lines go through logging too, so every line on stdout stays JSON. The
        # topic is never auto-created: a broker-default partition count would silently skew everything.
        config = {"allow.auto.create.topics": False, **settings.producer_config()}
        config.update(error_cb=self._on_client_error, logger=LibrdkafkaLog())
        self._kafka = RenewableProducer(config)
        self._has_metadata = threading.Event()
        self._start_time = settings.event_time_start
        if self._start_time is not None and self._start_time.tzinfo is None:
            self._start_time = self._start_time.replace(tzinfo=UTC)
        self._step = timedelta(milliseconds=settings.event_time_step_ms)
        self.produced = 0
        self.tally: DeliveryTally | None = None
        self._reports_seen = 0
        self._last_report_at = time.monotonic()
        self._stalled_since: float | None = None

    @property
    def _producer(self) -> Producer:
        return self._kafka.producer

    def ready(self) -> bool:
        """Ready once the producer has the topic's metadata (readiness probe)."""
        return self._has_metadata.is_set()

    def _on_client_error(self, err: KafkaError) -> None:
        CLIENT_ERRORS.inc()
        if err.fatal():
            # The producer cannot continue (e.g. idempotence state lost): stop, flush what it still can.
            logger.error("kafka_client_fatal_error", extra={"error": str(err)})
            self.shutdown.request()
            return
        logger.warning("kafka_client_error", extra={"error": str(err)})

    def _wait_for_topic(self) -> int | None:
        """The topic's partition count once its metadata is available; None if shutdown came first."""
        topic = self.settings.topic
        while not self.shutdown.requested:
            try:
                meta = self._producer.list_topics(topic, timeout=5).topics.get(topic)
            except Exception as exc:  # noqa: BLE001 - broker not reachable yet: logged, counted, retried
                CLIENT_ERRORS.inc()
                logger.warning("topic_metadata_failed", extra={"topic": topic, "error": repr(exc)})
            else:
                if meta is not None and meta.error is None and meta.partitions:
                    return len(meta.partitions)
                error = str(meta.error) if meta is not None else "absent"
                logger.warning("topic_not_available", extra={"topic": topic, "error": error})
            self.shutdown.wait(self.settings.topic_wait_seconds)
        return None

    def run(self) -> int:
        """Produce, then flush and log the summary; the process exit code (1 if records were lost)."""
        partitions = self._wait_for_topic()
        if partitions is None:
            logger.info("generator_summary", extra={"reason": "shutdown_before_start", "delivered": 0})
            return 0
        skew = self.settings.skew_partition
        if skew is not None and skew >= partitions:
            raise ConfigurationError(
                f"GENERATOR_SKEW_PARTITION: {skew} is not a partition of topic {self.settings.topic}"
                f" (it has {partitions})"
            )
        self.tally = DeliveryTally(self.settings.topic, partitions)
        self._partitions = PartitionChooser(self.settings, partitions)
        self._recent: list[list[tuple[bytes, bytes]]] = [[] for _ in range(partitions)]
        self._has_metadata.set()
        logger.info(
            "generator_started",
            extra={
                "topic": self.settings.topic,
                "partitions": partitions,
                "seed": self.seed,
                "rate": self.settings.rate,
                "total": self.settings.total,
            },
        )
        started = time.monotonic()
        reason = self._produce_loop(started)
        undelivered = self._flush()
        self._log_counts("generator_summary", started, reason=reason, undelivered=undelivered)
        if reason == "total_reached" and not self.settings.exit_when_done:
            logger.info("generator_idle", extra={"topic": self.settings.topic})
            self.shutdown.wait()
        return 1 if undelivered else 0

    def _produce_loop(self, started: float) -> str:
        total, rate = self.settings.total, self.settings.rate
        next_progress = started + self.settings.progress_interval_seconds
        while True:
            if self.shutdown.requested:
                return "shutdown_requested"
            if total and self.produced >= total:
                return "total_reached"
            now = time.monotonic()
            if now >= next_progress:
                self._log_counts("generator_progress", started)
                next_progress = now + self.settings.progress_interval_seconds
            budget = _CHUNK if rate == 0 else min(_CHUNK, int((now - started) * rate) + 1 - self.produced)
            if total:
                budget = min(budget, total - self.produced)
            if budget <= 0:
                self._producer.poll(0)
                self.shutdown.wait(min(0.05, (self.produced + 1 - (now - started) * rate) / rate))
                continue
            for _ in range(budget):
                if not self._produce_one():
                    break
            self._producer.poll(0)
            self._watch_deliveries()

    def _produce_one(self) -> bool:
        """Build and hand over one row; False if shutdown came while the client's queue was full."""
        assert self.tally is not None
        rng = self._rng
        partition = self._partitions.choose(rng)
        kind = self._kinds.choose(rng)
        recent = self._recent[partition]
        if kind == "duplicate" and not recent:
            kind = "valid"  # nothing to repeat yet on this partition
        if kind == "duplicate":
            key, value = recent[rng.randrange(len(recent))]
        else:
            key = self._key_for(partition)
            event_time = (
                datetime.now(UTC)
                if self._start_time is None
                else self._start_time + self._step * self.produced
            )
            record = self._factory.visit(key.decode(), event_time, self._shift())
            if kind == "valid":
                value = encode(record)
                if len(recent) < _RECENT:
                    recent.append((key, value))
                else:
                    recent[self.produced % _RECENT] = (key, value)
            elif kind == "missing_fields":
                value = encode(self._factory.with_missing_fields(record, self.settings.missing_fields)[0])
            else:
                value = self._factory.unparseable(record)
        return self._send(key, value, partition, self.tally.callback(kind))

    def _shift(self) -> str | None:
        after = self.settings.shift_after_records
        return self.settings.shift_field if after is not None and self.produced >= after else None

    def _key_for(self, partition: int) -> bytes:
        # Draw ids until one hashes to the chosen partition: keys and partitions stay consistent.
        while True:
            key = self._factory.visit_id().encode()
            if partition_for(key, self._partitions.partitions) == partition:
                return key

    def _send(self, key: bytes, value: bytes, partition: int, callback: Any) -> bool:
        while True:
            try:
                self._kafka.produce(
                    self.settings.topic, value=value, key=key, partition=partition, on_delivery=callback
                )
            except BufferError:
                # The client's queue is full (broker slow or down): serve delivery reports until there
                # is room, but never block a shutdown; the unsent row was never counted.
                if self.shutdown.requested:
                    return False
                self._producer.poll(0.05)
                self._watch_deliveries()
                continue
            self.produced += 1
            return True

    def _watch_deliveries(self) -> None:
        """Replace a producer that holds no broker (``producer``); report records in flight with no
        delivery report for a while.

        A client that cannot reach its broker keeps its queue and says nothing until the message timeout;
        the operator should hear about it before that.
        """
        assert self.tally is not None
        now = time.monotonic()
        self._kafka.renew_if_orphaned(now)
        reports = self.tally.total + self.tally.failures
        if reports != self._reports_seen or not len(self._producer):
            if self._stalled_since is not None:
                logger.info(
                    "delivery_resumed", extra={"stalled_seconds": round(now - self._stalled_since, 1)}
                )
                self._stalled_since = None
            self._reports_seen, self._last_report_at = reports, now
            return
        if now - self._last_report_at < self.settings.delivery_stall_seconds:
            return
        self._stalled_since = self._stalled_since or self._last_report_at
        self._last_report_at = now  # the next report of a continuing stall comes one period later
        DELIVERY_STALLS.inc()
        logger.warning(
            "delivery_stalled",
            extra={
                "in_flight": len(self._producer),
                "seconds_without_delivery": round(now - self._stalled_since, 1),
            },
        )

    def _flush(self) -> int:
        """Wait for in-flight records up to the flush timeout; the number still undelivered."""
        deadline = time.monotonic() + self.settings.flush_timeout_seconds
        remaining = len(self._producer)
        logger.info("generator_flushing", extra={"in_flight": remaining})
        while remaining and time.monotonic() < deadline:
            remaining = self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        if remaining:
            logger.error("flush_incomplete", extra={"topic": self.settings.topic, "undelivered": remaining})
        return remaining

    def _log_counts(self, event: str, started: float, **extra: Any) -> None:
        assert self.tally is not None
        elapsed = time.monotonic() - started
        delivered = self.tally.total
        logger.info(
            event,
            extra={
                **extra,
                "produced": self.produced,
                "delivered": delivered,
                "delivery_failures": self.tally.failures,
                "acknowledged_offset_repeats": self.tally.offset_repeats,
                "in_flight": len(self._producer),
                "by_kind": self.tally.by_kind(),
                "by_partition": self.tally.by_partition(),
                "by_partition_and_kind": self.tally.by_partition_and_kind(),
                "elapsed_seconds": round(elapsed, 3),
                "records_per_second": round(delivered / elapsed, 1) if elapsed > 0 else None,
                "paused_partition": self.settings.skew_partition if self._partitions.paused else None,
            },
        )
