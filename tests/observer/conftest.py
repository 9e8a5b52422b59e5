"""Observer test helpers: visit records of known composition, Spark-layout checkpoints, observer processes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import TopicPartition

from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_dev.chart import render_rule_files
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.search import SearchBackend
from streamwatch_dev.services import ServiceProcess, metric_value, service_env
from streamwatch_observer.lag import LagProbe
from streamwatch_observer.observer import Observer
from streamwatch_observer.settings import ObserverSettings
from streamwatch_observer.sink import ObservationSink


def visit(i: int, **overrides: Any) -> bytes:
    """One visit as the generator makes it (nested context); ``overrides`` replace top-level fields."""
    record: dict[str, Any] = {
        "visit_id": f"v-{i}",
        "event_time": "2026-11-22T10:00:00.000Z",
        "user_id": f"u-{i % 7}",
        "keep_private": i % 2 == 0,
        "page": f"page-{i % 5}.html",
        "context": {
            "referral": "google",
            "ad_id": None,
            "user": {"ip": "10.0.0.1", "login": f"l{i}", "connected_since": None},
            "technical": {"browser": "firefox", "network_type": "wifi", "device_type": "pc"},
        },
    }
    record.update(overrides)
    return json.dumps(record).encode()


def write_checkpoint(
    root: Path, batch_id: int, offsets: dict[int, int], topic: str, commit: bool = True
) -> None:
    """Batch ``batch_id`` of a Spark checkpoint: ``offsets/N`` (v1, metadata, sources), ``commits/N``."""
    (root / "offsets").mkdir(parents=True, exist_ok=True)
    (root / "commits").mkdir(parents=True, exist_ok=True)
    metadata = {"batchWatermarkMs": 0, "batchTimestampMs": 1763800000000, "conf": {}}
    source = {topic: {str(p): o for p, o in sorted(offsets.items())}}
    (root / "offsets" / str(batch_id)).write_text(f"v1\n{json.dumps(metadata)}\n{json.dumps(source)}")
    if commit:
        (root / "commits" / str(batch_id)).write_text('v1\n{"nextBatchWatermarkMs":0}')


class ObserverFactory:
    """Starts observer processes on fresh topics, group and index; stops them at the end of the test."""

    def __init__(self, kafka: KafkaBroker, search: SearchBackend, output_dir: Path) -> None:
        self.kafka = kafka
        self.search = search
        self.output_dir = output_dir
        suffix = uuid.uuid4().hex[:8]
        self.source = f"visits-{suffix}"
        self.topic = f"processed-{suffix}"
        self.group = f"observer-{suffix}"
        self.index = f"obs-{suffix}"
        self.checkpoint = output_dir / "checkpoint"
        self.profiles = output_dir / "profiles"
        self.processes: list[ServiceProcess] = []

    def topics(self, partitions: int = 2) -> None:
        self.kafka.create_topic(self.source, partitions)
        self.kafka.create_topic(self.topic, partitions)

    def produce_visits(self, topic: str, ids_by_partition: dict[int, range]) -> None:
        """``visit(i)`` for each id of a partition's range, produced in order to that partition."""
        for partition, ids in ids_by_partition.items():
            self.kafka.produce(topic, [(None, visit(i)) for i in ids], partition=partition)

    def env(self, **extra: str) -> dict[str, str]:
        defaults = {
            **self.kafka.env(),
            **self.search.env(),
            "ELASTICSEARCH_TIMEOUT_SECONDS": "3",
            "OBSERVER_TOPIC": self.topic,
            "OBSERVER_SOURCE_TOPIC": self.source,
            "OBSERVER_GROUP_ID": self.group,
            "OBSERVER_INDEX": self.index,
            "OBSERVER_CHECKPOINT_PATH": str(self.checkpoint),
            "OBSERVER_PROFILE_DIR": str(self.profiles),
            "OBSERVER_LAG_INTERVAL_SECONDS": "1",
            "OBSERVER_SINK_MAX_BACKOFF_SECONDS": "2",
        }
        return service_env(**{**defaults, **extra})  # extra overrides a default

    def start(self, name: str = "observer", **extra: str) -> ServiceProcess:
        process = ServiceProcess(
            "streamwatch-observer", self.output_dir / f"{name}.log", self.env(OBSERVER_REPLICA=name, **extra)
        )
        self.processes.append(process)
        return process.start_ready(path="/readyz")

    def docs(self, doc_type: str) -> list[dict[str, Any]]:
        return self.search.docs_of_type(self.index, doc_type)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def in_process_observer(
    observers: ObserverFactory,
    monkeypatch: pytest.MonkeyPatch,
    *,
    probe_overrides: dict[str, Any] | None = None,
    probe_timeout: float | None = None,
    **extra: str,
) -> tuple[Observer, LagProbe]:
    """An observer in the test's own process (the test calls ``step()``), configured as the service would be
    from :meth:`ObserverFactory.env` plus ``extra``; its lag probe's client takes ``probe_overrides``,
    its requests ``probe_timeout`` (None: the probe's own). The caller closes both."""
    for name, value in observers.env(**extra).items():
        monkeypatch.setenv(name, value)
    settings = ObserverSettings()
    sink = ObservationSink(settings.elasticsearch_client(), settings.index, settings.required_fields)
    sink.ensure_template()
    timeout: dict[str, Any] = {} if probe_timeout is None else {"timeout": probe_timeout}
    probe = LagProbe(
        {**settings.consumer_config(f"{settings.group_id}-lag-probe"), **(probe_overrides or {})},
        settings.source_topic,
        Path(settings.checkpoint_path),
        settings.lag_evaluation_window_seconds,
        job=settings.job,
        **timeout,
    )
    observer = Observer(
        settings=settings,
        shutdown=GracefulShutdown(),
        consumer_config=settings.consumer_config(settings.group_id),
        sink=sink,
        probe=probe,
        profiler=None,
    )
    return observer, probe


@pytest.fixture
def observers(
    kafka: KafkaBroker, search_backend: SearchBackend, output_dir: Path
) -> Iterator[ObserverFactory]:
    """Observers writing to the real Elasticsearch node (to osmem in tests marked ``osmem``)."""
    factory = ObserverFactory(kafka, search_backend, output_dir)
    yield factory
    factory.stop()


def coverage(windows: list[dict[str, Any]]) -> dict[int, list[tuple[int, int]]]:
    """Partition → sorted (start, end) offset ranges of window documents."""
    result: dict[int, list[tuple[int, int]]] = {}
    for doc in windows:
        result.setdefault(int(doc["partition"]), []).append(
            (int(doc["start_offset"]), int(doc["end_offset"]))
        )
    return {p: sorted(r) for p, r in result.items()}


def assert_exact_cover(ranges: list[tuple[int, int]], end: int) -> None:
    """The ranges cover offsets 0..end-1 exactly once: no gap, no overlap."""
    position = 0
    for start, stop in ranges:
        assert start == position, f"gap or overlap at {position}: {ranges}"
        position = stop + 1
    assert position == end, f"covered up to {position}, expected {end}: {ranges}"


def assert_windows_count_what_was_produced(
    windows: list[dict[str, Any]], ends: dict[int, int], by_partition_and_kind: dict[str, dict[str, int]]
) -> None:
    """Every offset below each partition's end is in exactly one window, and the windows' counts per
    partition equal what the generator delivered (its summary's ``by_partition_and_kind``)."""
    cover = coverage(windows)
    for partition, end in ends.items():
        assert_exact_cover(cover.get(partition, []), end)
    for key, kinds in by_partition_and_kind.items():
        mine = [w for w in windows if w["partition"] == int(key)]
        assert sum(w["all_events"] for w in mine) == sum(kinds.values())
        assert sum(w["unparseable"] for w in mine) == kinds.get("unparseable", 0)
        assert sum(w["invalid_records"] for w in mine) == kinds.get("missing_fields", 0)


Waiter = Callable[[], Any]


def committed_offsets(kafka: KafkaBroker, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets (without joining the group)."""
    consumer = kafka.consumer(group)
    try:
        result = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in result}
    finally:
        consumer.close()


def source_lags(
    observers: ObserverFactory, observer: ServiceProcess, partitions: int = 2, **job: str
) -> dict[int, float | None]:
    """``observer_lag_offsets`` of each source partition, as the observer's /metrics serves it (``job``:
    ``spark_job=<name>`` for one job's)."""
    text = observer.metrics()
    return {
        p: metric_value(text, "observer_lag_offsets", topic=observers.source, partition=str(p), **job)
        for p in range(partitions)
    }


def written_ranges(process: ServiceProcess) -> list[tuple[int, int, int]]:
    """(partition, start, end) of every ``window_written`` log line of a process."""
    return [(e["partition"], e["start_offset"], e["end_offset"]) for e in process.events("window_written")]


@pytest.fixture
def processes() -> Iterator[list[Any]]:
    """Processes a test starts by hand (generator, passthrough), stopped at its end."""
    started: list[Any] = []
    yield started
    for process in started:
        process.stop()


def start_passthrough(
    kafka: KafkaBroker, observers: ObserverFactory, log_path: Path, processes: list[Any], **extra: str
) -> ServiceProcess:
    """The real passthrough copying the factory's source topic to the observed one, ready once its query
    runs; ``extra`` overrides its environment (``PASSTHROUGH_TRIGGER_INTERVAL_SECONDS``...). It joins
    ``processes`` before it starts: the teardown stops it even if it never got ready."""
    passthrough = ServiceProcess(
        "streamwatch-passthrough",
        log_path,
        service_env(
            **{
                **kafka.env(),
                "PASSTHROUGH_SOURCE_TOPIC": observers.source,
                "PASSTHROUGH_TARGET_TOPIC": observers.topic,
                "PASSTHROUGH_CHECKPOINT_PATH": str(observers.checkpoint),
                "PASSTHROUGH_SPARK_MASTER": "local[2]",
                "PASSTHROUGH_SPARK_CONF": json.dumps(
                    {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"}
                ),
                "PASSTHROUGH_TRIGGER_INTERVAL_SECONDS": "0.5",
                **extra,  # overrides a default
            }
        ),
    )
    processes.append(passthrough)
    return passthrough.start_ready(timeout=120, path="/readyz")


def start_generator(
    kafka: KafkaBroker, topic: str, log_path: Path, processes: list[Any], **extra: str
) -> ServiceProcess:
    """The real generator producing to ``topic`` (``extra``: its ``GENERATOR_*`` settings); it joins
    ``processes``, so the teardown stops one left running (``GENERATOR_TOTAL=0``)."""
    generator = ServiceProcess(
        "streamwatch-generator", log_path, service_env(**kafka.env(), GENERATOR_TOPIC=topic, **extra)
    )
    processes.append(generator)
    generator.start()
    return generator


def chart_drift_threshold(target: Path) -> float:
    """The drift score above which the chart's default ``field drift`` alert fires, read from the rule
    as rendered (values.yaml ``alerts.drift.threshold``), so a test follows a changed default."""
    (rule_file,) = [p for p in render_rule_files(target) if p.name == "observer.rules.yaml"]
    groups = yaml.safe_load(rule_file.read_text())["groups"]
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}
    expr = " ".join(rules["field drift"]["expr"].split())
    # The release's series only (a namespace matcher); one score per partition and field.
    shape = r"max by \(namespace, job, topic, partition, field\) \(observer_field_drift\{[^}]*\}\) > [0-9.]+"
    assert re.fullmatch(shape, expr), expr
    return float(expr.rsplit(">", 1)[1])
