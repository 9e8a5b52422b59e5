"""Helpers of the visits-writer stream tests: start the writer and the generator, read the Delta tables,
measure the process tree's memory, follow an alert's states."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from deltalake import DeltaTable

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Prometheus
from streamwatch_dev.services import VENV_BIN, ServiceProcess, service_env
from streamwatch_dev.spark import spark_jars_dir


@dataclass
class WriterPaths:
    """Where one writer keeps its state; reused across restarts to resume from the checkpoint.

    ``root``: a local directory, or an ``s3a://bucket/prefix`` read with ``storage_options``.
    """

    root: Path | str
    instance: str = field(default_factory=lambda: f"vw-{uuid.uuid4().hex[:6]}")
    storage_options: dict[str, str] | None = None

    def _under(self, name: str) -> str:
        return f"{str(self.root).rstrip('/')}/{name}"

    @property
    def visits(self) -> str:
        return self._under("delta/visits")

    @property
    def dead_letters(self) -> str:
        return self._under("delta/visits_dead_letters")

    @property
    def checkpoint(self) -> str:
        return self._under("checkpoint")


def writer_env(
    kafka: KafkaBroker, topic: str, paths: WriterPaths, connector: str = "python", **extra: str
) -> dict[str, str]:
    """The writer's environment; ``connector="jvm"``: Spark's Kafka source and delta-spark, with the jars."""
    jvm = {"VISITS_WRITER_SPARK_JARS_DIR": str(spark_jars_dir())} if connector == "jvm" else {}
    settings = {
        "VISITS_WRITER_CONNECTOR": connector,
        **jvm,
        "VISITS_WRITER_SOURCE_TOPIC": topic,
        "VISITS_WRITER_VISITS_TABLE_PATH": paths.visits,
        "VISITS_WRITER_DEAD_LETTER_TABLE_PATH": paths.dead_letters,
        "VISITS_WRITER_CHECKPOINT_PATH": paths.checkpoint,
        "VISITS_WRITER_SPARK_MASTER": "local[2]",
        "VISITS_WRITER_TRIGGER_INTERVAL_SECONDS": "0.5",
        "VISITS_WRITER_MAX_RECORDS_PER_TRIGGER": "200",
        "VISITS_WRITER_INSTANCE": paths.instance,
    }
    return service_env(**kafka.env(), **{**settings, **extra})


def start_writer(log_path: Path, env: dict[str, str], args: list[str] | None = None) -> ServiceProcess:
    """The writer, ready once its query is active (``/readyz``)."""
    return ServiceProcess("streamwatch-visits-writer", log_path, env, args).start_ready(
        timeout=120, path="/readyz"
    )


def run_writer(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``streamwatch-visits-writer [args]`` to its end, its output captured."""
    command = [str(VENV_BIN / "streamwatch-visits-writer"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def run_generator(
    kafka: KafkaBroker, topic: str, log_path: Path, total: int, seed: int, **extra: str
) -> None:
    """Produce ``total`` visits (with the generator's default share of bad rows) and wait for it to finish."""
    env = service_env(
        **kafka.env(),
        GENERATOR_TOPIC=topic,
        GENERATOR_TOTAL=str(total),
        GENERATOR_RATE="0",
        GENERATOR_SEED=str(seed),
        GENERATOR_MISSING_FIELDS_PERCENT="5",
        GENERATOR_UNPARSEABLE_PERCENT="3",
        GENERATOR_DUPLICATE_PERCENT="2",
        **extra,
    )
    # Not waited for readiness: with a small total the generator can be done and gone before a probe.
    generator = ServiceProcess("streamwatch-generator", log_path, env).start()
    assert generator.wait(120) == 0, generator.tail()


def start_generator(kafka: KafkaBroker, topic: str, log_path: Path, rate: float) -> ServiceProcess:
    """A continuous generator (stop it with ``.stop()``)."""
    env = service_env(**kafka.env(), GENERATOR_TOPIC=topic, GENERATOR_RATE=str(rate), GENERATOR_TOTAL="0")
    return ServiceProcess("streamwatch-generator", log_path, env).start_ready(timeout=60)


def table_rows(
    path: str, columns: list[str], storage_options: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    if not DeltaTable.is_deltatable(path, storage_options=storage_options):
        return []
    table = DeltaTable(path, storage_options=storage_options)
    return list(table.to_pyarrow_table(columns=columns).to_pylist())


def written(paths: WriterPaths) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(visits rows, dead-letter rows) with their source coordinates."""
    visits = table_rows(paths.visits, ["partition", "offset", "batch_id"], paths.storage_options)
    dead = table_rows(
        paths.dead_letters, ["partition", "offset", "batch_id", "reason", "detail"], paths.storage_options
    )
    return visits, dead


def kill_tree(process: ServiceProcess) -> None:
    """SIGKILL the writer and its JVM at once: a crash, no chance to finish anything."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


class PeakRss:
    """Samples the resident memory of a process and all its children (the Spark JVM, Python workers)."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            except psutil.Error:
                total = 0
            self.peak_bytes = max(self.peak_bytes, total)
            time.sleep(0.5)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(2)
        return self.peak_bytes


def assert_each_offset_once(
    paths: WriterPaths, end_offsets: dict[int, int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every offset below ``end_offsets`` is in exactly one of the two tables, once; returns their rows."""
    visits, dead = written(paths)
    assert_coordinates_once([(r["partition"], r["offset"]) for r in visits + dead], end_offsets)
    return visits, dead


def assert_coordinates_once(coordinates: list[tuple[int, int]], end_offsets: dict[int, int]) -> None:
    """The (partition, offset) of the rows written are every offset below ``end_offsets``, each once."""
    produced = sum(end_offsets.values())
    assert len(coordinates) == produced, (len(coordinates), produced)
    assert len(set(coordinates)) == produced, "a (partition, offset) was written twice"
    assert set(coordinates) == {(p, o) for p, end in end_offsets.items() for o in range(end)}


def wait_rows(paths: WriterPaths, at_least: int, timeout: float) -> None:
    wait_until(
        lambda: sum(map(len, written(paths))) >= at_least, timeout, interval=0.5, what=f"{at_least} rows"
    )


class Timeline:
    """Alert state transitions and what happened to the job, with seconds since the start; each state
    change notes the value of ``shown`` (a PromQL expression) beside it."""

    def __init__(self, prometheus: Prometheus, alert: str, shown: str) -> None:
        self.prometheus = prometheus
        self.alert = alert
        self.shown = shown
        self.started = time.monotonic()
        self.entries: list[tuple[float, str]] = []
        self.states: list[str] = []

    def note(self, what: str) -> None:
        self.entries.append((time.monotonic() - self.started, what))

    def poll(self) -> str:
        state = self.prometheus.alert_state(self.alert)
        if not self.states or self.states[-1] != state:
            value = self.prometheus.query(self.shown)
            shown = value[0]["value"][1] if value else "none"
            self.states.append(state)
            self.note(f"alert {state} ({self.shown} = {shown})")
        return state

    def wait_for(self, states: set[str], timeout: float) -> None:
        try:
            wait_until(lambda: self.poll() in states, timeout, interval=0.5, what=f"alert {states}")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; timeline so far:\n{self.render()}") from exc

    def was(self, state: str) -> bool:
        """Prometheus' own record (the ALERTS series), independent of how often this test polled."""
        expr = f'max_over_time(ALERTS{{alertname="{self.alert}", alertstate="{state}"}}[30m])'
        return bool(self.prometheus.query(expr))

    def render(self) -> str:
        return "\n".join(f"  {t:6.1f}s  {what}" for t, what in self.entries)
