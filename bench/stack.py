"""Real components for the benchmarks (through the local runtime, streamwatch_dev), visit data and
measuring helpers."""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psutil
from confluent_kafka import Producer

from bench.report import BenchRun, PeakMemory
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.prometheus import Pushgateway
from streamwatch_dev.search import SearchServer
from streamwatch_dev.services import ServiceProcess
from streamwatch_generator.records import VisitFactory, encode

logger = logging.getLogger(__name__)

K = TypeVar("K")

# Bulk loading of the benchmarks' input topics only; the services under load run librdkafka's defaults.
_LOAD_PROPERTIES: dict[str, Any] = {
    "linger.ms": 50,
    "batch.num.messages": 10000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
}


@dataclass
class Infra:
    """Broker, Pushgateway and search server, started on first use and stopped together."""

    work_dir: Path
    _kafka: KafkaBroker | None = None
    _pushgateway: Pushgateway | None = None
    _search: SearchServer | None = None
    loaded: dict[str, int] = field(default_factory=dict)

    @property
    def kafka(self) -> KafkaBroker:
        if self._kafka is None:
            self._kafka = KafkaBroker.start(self.work_dir / "infra")
        return self._kafka

    @property
    def pushgateway(self) -> Pushgateway:
        if self._pushgateway is None:
            self._pushgateway = Pushgateway.start(self.work_dir / "infra")
        return self._pushgateway

    @property
    def search(self) -> SearchServer:
        if self._search is None:
            self._search = SearchServer.start(self.work_dir / "infra")
        return self._search

    def visits_topic(self, records: int, partitions: int = 2) -> str:
        """A topic holding ``records`` visits; made once per size and shared by the benchmarks."""
        name = f"bench-visits-{records}"
        if name not in self.loaded:
            self.kafka.create_topic(name, partitions)
            load_topic(self.kafka, name, visit_values(records), partitions)
            self.loaded[name] = records
        return name

    def drop_topic(self, name: str) -> None:
        """Delete a topic that is no longer needed (its log segments take disk space)."""
        admin = self.kafka.admin()  # held until the futures resolve: a collected client cancels them
        try:
            for future in admin.delete_topics([name]).values():
                future.result(timeout=15)
        except Exception as exc:  # noqa: BLE001 - only disk space is at stake; say so and go on
            logger.warning("bench_topic_not_deleted", extra={"topic": name, "error": str(exc)})

    def stop(self) -> None:
        for component in (self._kafka, self._pushgateway, self._search):
            if component is not None:
                component.stop()


def visit_values(count: int, seed: int = 8) -> list[bytes]:
    """Generator-shaped visits with unique ids and a realistic share of bad rows: 1 % with a required field
    missing, 0.5 % unparseable (cut short), 0.5 % duplicate ids (of the record two places before: the same
    partition when spread round-robin over two)."""
    rng = random.Random(seed)
    factory = VisitFactory(rng)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    pool = [
        encode(factory.visit("@ID@", start + timedelta(milliseconds=n * 37))).split(b"@ID@", 1)
        for n in range(2000)
    ]
    values: list[bytes] = []
    for n in range(count):
        head, tail = pool[n % len(pool)]
        kind = n % 200
        if kind == 7:
            values.append(head + b"%012d" % n)  # cut short: never valid JSON
            continue
        visit_id = b"%012d" % (n - 2 if kind == 11 else n)
        value = head + visit_id + tail
        if kind in (3, 4):
            value = value.replace(b'"user_id":"', b'"user_id":null,"x":"', 1)
        values.append(value)
    return values


def load_topic(kafka: KafkaBroker, topic: str, values: list[bytes], partitions: int) -> None:
    """Produce ``values`` round-robin over the partitions, fast (batched), in offset order."""
    shares: list[list[bytes]] = [values[p::partitions] for p in range(partitions)]
    bulk = Producer({"bootstrap.servers": kafka.bootstrap, **_LOAD_PROPERTIES})
    for partition, share in enumerate(shares):
        for value in share:
            while True:
                try:
                    bulk.produce(topic, value=value, partition=partition)
                    break
                except BufferError:
                    bulk.poll(0.1)
        bulk.poll(0)
    left = bulk.flush(120)
    if left:
        raise RuntimeError(f"{left} records not delivered to {topic}")


class PeakRss:
    """Samples the memory and CPU time of process trees (a Spark job: Python driver, JVM, Python workers).

    RSS summed over a tree counts the pages forked workers share with their parent once per process;
    PSS divides shared pages among their users, so its sum is the tree's real footprint (what a container's
    memory limit sees, near enough). Both are kept. CPU seconds per record do not depend on how busy the
    shared machine is; wall time does.
    """

    def __init__(self, *pids: int, interval: float = 0.25) -> None:
        self.pids = pids
        self.interval = interval
        self.peak_bytes = 0
        self.peak_pss_bytes = 0
        self.peak_processes = 0
        self.peak_breakdown: dict[str, float] = {}
        self.cpu_samples: list[tuple[float, float]] = []
        # CPU seconds per process role (:func:`process_role`) at each sample, for where a job's CPU goes.
        self.role_samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self._thread.start()

    def _sample(self) -> tuple[int, int, int, float, dict[str, float], dict[str, float]]:
        rss, pss, count, cpu = 0, 0, 0, 0.0
        by_name: dict[str, float] = {}
        by_role: dict[str, float] = {}
        for pid in self.pids:
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in tree:
                try:
                    memory = proc.memory_full_info()
                    times = proc.cpu_times()
                    name = proc.name()
                    role = process_role(name, proc.cmdline())
                except psutil.Error:
                    continue  # exited between listing and sampling
                rss += memory.rss
                pss += memory.pss
                # children_*: workers that already exited and were reaped by this process.
                used = times.user + times.system + times.children_user + times.children_system
                cpu += used
                count += 1
                by_name[name] = by_name.get(name, 0.0) + memory.pss / 2**20
                by_role[role] = by_role.get(role, 0.0) + used
        return rss, pss, count, cpu, by_name, by_role

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, pss, count, cpu, by_name, by_role = self._sample()
            self.peak_bytes = max(self.peak_bytes, rss)
            if pss > self.peak_pss_bytes:
                self.peak_pss_bytes, self.peak_processes, self.peak_breakdown = pss, count, by_name
            if count:
                now = time.time()
                self.cpu_samples.append((now, cpu))
                self.role_samples.append((now, by_role))
            self._stop.wait(self.interval)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the trees used between two Unix times, read between the samples around each."""
        return max(0.0, reading_at(self.cpu_samples, end) - reading_at(self.cpu_samples, start))

    def cpu_by_role_between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per process role (:func:`process_role`) between two Unix times."""
        roles = {role for _, by_role in self.role_samples for role in by_role}
        used: dict[str, float] = {}
        for role in sorted(roles):
            # A role absent from a sample had no process then: nothing used yet, or already counted
            # by the parent that reaped it.
            series = [(at, by_role.get(role, 0.0)) for at, by_role in self.role_samples]
            used[role] = max(0.0, reading_at(series, end) - reading_at(series, start))
        return used

    @property
    def peak_mib(self) -> float:
        """Peak of the summed RSS."""
        return round(self.peak_bytes / 2**20, 1)

    @property
    def peak_pss_mib(self) -> float:
        return round(self.peak_pss_bytes / 2**20, 1)

    @property
    def breakdown(self) -> str:
        """PSS per process name at the PSS peak, largest first: ``java 610, python3.11 340``."""
        parts = sorted(self.peak_breakdown.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{name} {mib:.0f}" for name, mib in parts)

    def memory(self, service: str, load: str) -> PeakMemory:
        self.stop()
        return PeakMemory(
            service, load, self.peak_mib, self.peak_pss_mib, self.peak_processes, self.breakdown
        )

    def stop(self) -> float:
        """Stop sampling; the peak summed RSS in MiB."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5)
        return self.peak_mib


def reading_at(samples: list[tuple[float, float]], at: float) -> float:
    """A cumulative counter's value at Unix time ``at``, interpolated between the samples taken around
    it (the nearest sample outside their span): the sampling interval no longer bounds the precision of a
    short steady run's CPU seconds."""
    if not samples:
        return 0.0
    for (t0, v0), (t1, v1) in itertools.pairwise(samples):
        if t0 <= at <= t1:
            return v0 if t1 <= t0 else v0 + (v1 - v0) * (at - t0) / (t1 - t0)
    return samples[0][1] if at < samples[0][0] else samples[-1][1]


def process_role(name: str, cmdline: list[str]) -> str:
    """What a process of a job's tree is, for a CPU breakdown: its executable's name, or for Python the
    module it runs (``pyspark.daemon pyspark.worker``: a daemon's forked workers keep its command line)
    or its script's name (the service's driver)."""
    if not name.startswith("python") or len(cmdline) < 2:
        return name
    if "-m" in cmdline:
        return " ".join(cmdline[cmdline.index("-m") + 1 :])
    return Path(cmdline[1]).name


def stamp(event: dict[str, Any]) -> float:
    """A JSON log line's ``ts`` as Unix seconds."""
    return datetime.fromisoformat(str(event["ts"])).timestamp()


def wait_records(process: ServiceProcess, event: str, total: int, timeout: float) -> list[dict[str, Any]]:
    """Wait until the ``records`` fields of a process' ``event`` lines add up to ``total``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running:
            raise RuntimeError(f"{process.name} exited early:\n{process.tail()}")
        events = process.events(event)
        if sum(int(e.get("records", 0)) for e in events) >= total:
            return events
        time.sleep(0.5)
    done = sum(int(e.get("records", 0)) for e in process.events(event))
    raise TimeoutError(f"{process.name}: {done} of {total} records after {timeout:.0f}s:\n{process.tail()}")


def start_sampled(command: str, log_path: Path, env: dict[str, str]) -> tuple[ServiceProcess, PeakRss]:
    """Start a service and sample its memory and CPU (the caller stops both)."""
    process = ServiceProcess(command, log_path, env)
    process.start()
    return process, PeakRss(process.pid)


def run_until_records(
    command: str, log_path: Path, env: dict[str, str], *, event: str, total: int, timeout: float
) -> tuple[list[dict[str, Any]], PeakRss]:
    """Start a service, sample its memory and CPU until its ``event`` lines count ``total`` records,
    then stop it (SIGTERM). Returns those events and the sampler."""
    process, rss = start_sampled(command, log_path, env)
    try:
        events = wait_records(process, event, total, timeout=timeout)
    finally:
        rss.stop()
        process.stop(timeout=60)
    return events, rss


@dataclass(frozen=True)
class Steady:
    """The steady part of a streaming run: from the end of the first (warm-up) batch to the last's end."""

    records: int
    batches: int
    start: float
    end: float

    @property
    def rate(self) -> float:
        return self.records / max(1e-6, self.end - self.start)


def _busy(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A job's batch log lines that carried records."""
    return [b for b in batches if int(b.get("records", 0)) > 0]


def steady(batches: list[dict[str, Any]]) -> Steady:
    """The steady part of a job's non-empty batch log lines (``records`` and ``ts`` fields)."""
    busy = _busy(batches)
    if len(busy) < 2:
        raise RuntimeError(f"need at least two non-empty batches for a steady rate, got {len(busy)}")
    records = sum(int(b["records"]) for b in busy[1:])
    return Steady(records, len(busy) - 1, stamp(busy[0]), stamp(busy[-1]))


def overlap(batches: list[dict[str, Any]], start: float, end: float) -> Steady:
    """The part of a job's non-empty batches that ended within (``start``, ``end``]: their records, from
    the end of the batch before them (or ``start``) to the end of the last. Two jobs run side by side are
    compared over the time both ran, so neither is measured while it had the machine to itself."""
    busy = _busy(batches)
    inside = [b for b in busy if start < stamp(b) <= end]
    if not inside:
        raise RuntimeError("no batch ended while both jobs ran: too few records for a side-by-side run")
    before = [stamp(b) for b in busy if stamp(b) <= start]
    begin = max(before) if before else start
    return Steady(sum(int(b["records"]) for b in inside), len(inside), begin, stamp(inside[-1]))


def side_by_side(runs: dict[K, list[dict[str, Any]]]) -> dict[K, Steady]:
    """Each of jobs run at the same time, over the batches that ended while every one was past its first
    (warm-up) batch and none had finished its last: :func:`overlap` of each."""
    busy = {name: _busy(batches) for name, batches in runs.items()}
    if not all(busy.values()):
        raise RuntimeError("a job of a side-by-side run wrote no records")
    start = max(stamp(batches[0]) for batches in busy.values())
    end = min(stamp(batches[-1]) for batches in busy.values())
    return {name: overlap(batches, start, end) for name, batches in busy.items()}


def add_cpu_by_role(run_: BenchRun, benchmark: str, case: str, rss: PeakRss, part: Steady) -> None:
    """Where a job's steady CPU went: CPU-seconds per 100k records for each process role that used any
    (:func:`process_role`: the JVM, the driver, each kind of Spark Python worker)."""
    for role, seconds in rss.cpu_by_role_between(part.start, part.end).items():
        if seconds > 0:
            per = seconds * 100_000 / max(1, part.records)
            run_.add(benchmark, case, f"CPU-s per 100k records: {role}", per, "s", note="steady part")
