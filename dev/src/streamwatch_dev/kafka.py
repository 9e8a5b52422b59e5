"""A real Apache Kafka broker (KRaft, one combined broker + controller node) and client helpers for tests.

The broker runs from the Maven Central jars that ``.ci/maven-libs.sh`` (part of ``make deps``) puts in a
cache directory outside the repository, on loopback ports, with its log directory on disk: a restart keeps
topics, records and committed offsets, as a broker in the cluster does.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec  # confluent_kafka.admin re-exports it implicitly
from confluent_kafka.cimpl import NewTopic

from streamwatch_dev.process import ComponentStartError, ManagedProcess, free_port, maven_libs, wait_until

KAFKA_VERSION = "4.3.1"  # what the chart's Strimzi runs; .ci/install-deps.sh resolves the same
HEAP = "-Xmx512m"
SCRAM_MECHANISM = "SCRAM-SHA-512"
START_TIMEOUT = 60.0

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
# Lines per partition (every topic of every test) and full config dumps: warnings only.
logger.state.name = state.change.logger
logger.state.level = WARN
logger.partition.name = kafka.cluster
logger.partition.level = WARN
logger.log.name = org.apache.kafka.storage.internals.log
logger.log.level = WARN
logger.logmanager.name = kafka.log
logger.logmanager.level = WARN
logger.runtime.name = org.apache.kafka.coordinator.common.runtime
logger.runtime.level = WARN
logger.config.name = org.apache.kafka.common.config
logger.config.level = WARN
logger.kconfig.name = kafka.server.KafkaConfig
logger.kconfig.level = WARN
"""


def kafka_libs() -> Path:
    """Where ``.ci/maven-libs.sh`` put the broker's jars (``KAFKA_LIBS`` overrides)."""
    return maven_libs(f"kafka-{KAFKA_VERSION}", "KAFKA_LIBS")


def kafka_tools_libs() -> Path:
    """Where ``.ci/maven-libs.sh`` put kafka-tools' jars beyond the broker's (``KAFKA_TOOLS_LIBS``
    overrides): Kafka's own command-line tools, e.g. ``kafka-consumer-groups.sh``'s class."""
    return maven_libs(f"kafka-tools-{KAFKA_VERSION}", "KAFKA_TOOLS_LIBS")


def _java_and_classpath() -> tuple[str, str]:
    java = shutil.which("java")
    if java is None:
        raise ComponentStartError(
            "kafka broker: java not found on PATH (run make deps: openjdk-17-jre-headless)"
        )
    libs = kafka_libs()
    if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
        raise ComponentStartError(
            f"kafka broker: Apache Kafka {KAFKA_VERSION} jars not found in {libs}"
            " (run make deps: .ci/install-deps.sh)"
        )
    return java, f"{libs}/*"


def _cluster_id() -> str:
    """A random cluster id in Kafka's form (URL-safe base64 of a UUID, never starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _server_properties(data_dir: Path, port: int, controller_port: int, sasl_port: int | None) -> str:
    listeners = f"PLAINTEXT://127.0.0.1:{port}"
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    extra: dict[str, str] = {}
    if sasl_port is not None:
        # Clients authenticate with SCRAM-SHA-512 (what a Strimzi KafkaUser gets); the harness's own
        # clients keep the plaintext listener.
        listeners += f",SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        extra = {
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
        }
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"{listeners},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": listeners,
        "listener.security.protocol.map": protocols,
        **extra,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "log.dirs": str(data_dir),
        # One node: every internal topic has one replica. Ten partitions instead of 50 for the offsets and
        # transaction topics: the first group join on a fresh broker takes ~1.3 s instead of ~4 s.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
        # Tests form consumer groups all the time: no 3 s wait for more members before the first rebalance.
        "group.initial.rebalance.delay.ms": "0",
        # After a crash (kill()) the restarted controller waits out the dead incarnation's session before the
        # broker may register again: 4 s instead of 9 s. Heartbeats stay in-process (combined node).
        "broker.heartbeat.interval.ms": "1000",
        "broker.session.timeout.ms": "4000",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


@dataclass
class KafkaBroker:
    """A running single-node KRaft broker on loopback ports, its data in ``data_dir``.

    >>> broker = KafkaBroker.start(Path("test-output/_infra"))
    >>> broker.produce(broker.create_topic("visits"), [(b"k", b"v")])
    """

    process: ManagedProcess
    port: int
    controller_port: int
    data_dir: Path
    # The SASL_PLAINTEXT listener, when started with scram_users.
    sasl_port: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        if self.sasl_port is None:
            raise ValueError("this broker has no SASL listener (start it with scram_users)")
        return f"127.0.0.1:{self.sasl_port}"

    @classmethod
    def start(
        cls, log_dir: Path, port: int | None = None, scram_users: Mapping[str, str] | None = None
    ) -> KafkaBroker:
        """Format a fresh log directory under ``log_dir`` and start the broker (a new, empty cluster).

        With ``scram_users`` (name → password) the broker also listens for SASL_PLAINTEXT clients on
        :attr:`sasl_bootstrap`, and those users' SCRAM-SHA-512 credentials are written at format time.
        """
        java, classpath = _java_and_classpath()
        port = port or free_port()
        controller_port = free_port()
        sasl_port = free_port() if scram_users else None
        home = log_dir / f"kafka-{port}"
        data_dir = home / "data"
        shutil.rmtree(home, ignore_errors=True)
        data_dir.mkdir(parents=True)
        config = home / "server.properties"
        config.write_text(_server_properties(data_dir, port, controller_port, sasl_port))
        log4j = home / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        jvm = [java, f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true", "-cp", classpath]

        storage_format = ["format", "--standalone", "-t", _cluster_id(), "-c", str(config)]
        for name, password in (scram_users or {}).items():
            storage_format += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        formatter = ManagedProcess(
            "kafka storage format",
            [*jvm, "-Xmx256m", "kafka.tools.StorageTool", *storage_format],
            log_dir / f"kafka-{port}-format.log",
        ).start()
        if formatter.wait(60) != 0:
            raise ComponentStartError(f"kafka storage format failed; log tail:\n{formatter.tail()}")
        formatter.stop()

        process = ManagedProcess(
            f"kafka broker {KAFKA_VERSION}",
            [*jvm, HEAP, "kafka.Kafka", str(config)],
            log_dir / f"kafka-{port}.log",
        )
        broker = cls(process, port, controller_port, data_dir, sasl_port)
        process.start(ready=broker._ready, timeout=START_TIMEOUT)
        return broker

    def _ready(self) -> bool:
        """Metadata answers, the broker leads every partition it has (after a restart the partitions come
        back one by one, and a client asking too early would be told NOT_LEADER) and the group coordinator
        answers."""
        # Polled before the broker listens: its "connection refused" lines are expected, not news.
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        meta = admin.list_topics(timeout=2)
        if not meta.brokers:
            return False
        partitions = []
        for name, topic in meta.topics.items():
            if topic.error is not None or any(p.leader < 0 for p in topic.partitions.values()):
                return False
            partitions += [TopicPartition(name, p) for p in topic.partitions]
        if partitions:
            latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
            futures = admin.list_offsets(dict.fromkeys(partitions, latest), request_timeout=2)
            for future in futures.values():
                future.result(timeout=5)
        # The group coordinator: the first lookup creates __consumer_offsets, and until its partitions are
        # loaded a commit fails with NOT_COORDINATOR (librdkafka does not retry a synchronous commit).
        # Asked through a consumer: the admin client's list_consumer_group_offsets can crash the process
        # while the coordinator is not there yet (librdkafka, confluent-kafka-python issue #1982).
        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": "harness-readiness", "log_level": 0}
        )
        try:
            consumer.committed([TopicPartition("harness-readiness", 0)], timeout=5)
        finally:
            consumer.close()
        return True

    def restart(self) -> None:
        """Stop cleanly (if running) and start again on the same ports and log directory: topics, records
        and committed offsets survive."""
        self.process.stop(timeout=30)
        self.process.start(ready=self._ready, timeout=START_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL the broker: a crash, no clean shutdown. :meth:`restart` brings it back (log recovery)."""
        self.process.kill()

    def stop(self) -> None:
        self.process.stop(timeout=30)

    # --- client helpers -------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment for a service process connecting to this broker."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}

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
            return (
                topic is not None
                and topic.error is None
                and len(topic.partitions) == partitions
                and all(p.leader >= 0 for p in topic.partitions.values())
            )

        wait_until(visible, 15, what=f"topic {name} metadata")
        return name

    def producer(self, **overrides: Any) -> Producer:
        return Producer({"bootstrap.servers": self.bootstrap, **overrides})

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
                **overrides,
            }
        )

    def describe_group(self, group: str) -> dict[tuple[str, int], GroupPartition]:
        """What ``kafka-consumer-groups.sh --describe --group`` prints for ``group``, per (topic,
        partition): the class that script runs, Kafka's own, on the broker's and kafka-tools' jars."""
        java, classpath = _java_and_classpath()
        tools = kafka_tools_libs()
        if not (tools / f"kafka-tools-{KAFKA_VERSION}.jar").is_file():
            raise ComponentStartError(
                f"kafka-tools {KAFKA_VERSION} jars not found in {tools} (run make deps)"
            )
        command = [
            java, "-Xmx256m", "-Dlog4j2.level=warn", "-cp", f"{classpath}:{tools}/*",
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            "--bootstrap-server", self.bootstrap, "--describe", "--group", group,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"kafka-consumer-groups --describe {group}: {done.stderr.strip()[-2000:]}")
        return parse_group_description(done.stdout)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """The newest offset (high watermark) of each partition, asked of the broker."""
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

    def records_by_partition(
        self, topic: str, expected: int | None = None, idle_timeout: float = 5.0
    ) -> dict[int, list[tuple[bytes | None, bytes | None]]]:
        """Key and value of every record of a topic, per partition in offset order (read as :meth:`read_all`
        reads); every partition of the topic has an entry, an empty one included."""
        result: dict[int, list[tuple[bytes | None, bytes | None]]] = {p: [] for p in self.end_offsets(topic)}
        for msg in self.read_all(topic, expected=expected, idle_timeout=idle_timeout):
            partition = msg.partition()
            assert partition is not None
            result[partition].append((msg.key(), msg.value()))
        return result


@dataclass(frozen=True)
class GroupPartition:
    """One row of ``kafka-consumer-groups.sh --describe``; None where the tool prints ``-``."""

    current_offset: int | None
    log_end_offset: int | None
    lag: int | None


def parse_group_description(text: str) -> dict[tuple[str, int], GroupPartition]:
    """The rows of ``--describe`` output (columns named by its header line; a line per group partition)."""
    rows: dict[tuple[str, int], GroupPartition] = {}
    header: list[str] | None = None
    for line in text.splitlines():
        cells = line.split()
        if not cells:
            continue
        if cells[0] == "GROUP":
            header = cells
            continue
        if header is None or len(cells) < len(header):
            continue
        row = dict(zip(header, cells, strict=False))

        def number(column: str, row: dict[str, str] = row) -> int | None:
            return None if row[column] == "-" else int(row[column])

        rows[(row["TOPIC"], int(row["PARTITION"]))] = GroupPartition(
            number("CURRENT-OFFSET"), number("LOG-END-OFFSET"), number("LAG")
        )
    return rows


def _drain(consumer: Consumer, expected: int | None, idle_timeout: float) -> Iterator[Message]:
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
