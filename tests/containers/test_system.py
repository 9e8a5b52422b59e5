"""The whole system as containers, wired by the rendered chart, against the real local infrastructure.

Every service runs from the image this run built, with the command, env, user, read-only root
filesystem, capabilities, limits and volumes of its rendered pod spec (streamwatch_dev/containers.py says
how a pod spec becomes ``docker run``). The tests run in file order on one running system:

1. the observer scales 1 → 3 → 1 while visits flow, as ``kubectl scale`` would, and the broker is
   restarted under the running system (SIGTERM, then SIGKILL) without any container restarting;
2. the observation path (generator → passthrough → observer → search server) counts exactly what the
   generator produced, the windows cover every offset once, and lag reaches 0;
3. the Delta path holds every produced record once, as a row or a dead letter;
4. profile reports reach the publisher and its index page lists them (the SLA alert's flip by
   ``helm upgrade`` runs on the real cluster: tests/e2e_kind);
5. container behaviour: JSON logs only, nothing written outside the mounts, uid 10001, and SIGTERM ends
   every container with exit 0 inside its pod's termination grace period.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from observer.conftest import assert_windows_count_what_was_produced, coverage
from prometheus_client.parser import text_string_to_metric_families
from visits_writer.stack import WriterPaths, written

from streamwatch_dev.chart import render, render_rule_files
from streamwatch_dev.containers import ChartWiring, ContainerRun
from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.images import BuildResult
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import free_port, wait_until
from streamwatch_dev.prometheus import Prometheus, Pushgateway, http_get
from streamwatch_dev.search import SearchServer
from streamwatch_dev.workloads import Container, by_kind, service_containers
from streamwatch_observer.checkpoint import read_committed

pytestmark = pytest.mark.spark

SLA_MS = 5000
RATE = 40  # records/s, from an endless generator stopped (SIGTERM) once the observer has scaled
RELEASE = "sw"


@dataclass
class System:
    """The running containers of one chart release and the values they were rendered with."""

    engine: DockerEngine
    kafka: KafkaBroker
    search: SearchServer
    pushgateway: Pushgateway
    prometheus: Prometheus
    root: Path
    run_id: str
    values: dict[str, str]
    hosts: dict[str, str]
    publisher_port: int
    secrets: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, ContainerRun] = field(default_factory=dict)
    finished: list[ContainerRun] = field(default_factory=list)  # stopped or exited, kept for reports

    def pod(self, component: str, n: int | str) -> str:
        """A pod-like container name; the run id keeps two runs on one engine apart."""
        return f"{RELEASE}-streamwatch-{component}-{self.run_id}-{n}"

    @property
    def visits(self) -> str:
        return self.values["kafka.topics.visits.name"]

    @property
    def processed(self) -> str:
        return self.values["kafka.topics.processedVisits.name"]

    @property
    def index(self) -> str:
        return self.values["observer.settings.index"]

    def wiring(self, **overrides: str) -> ChartWiring:
        """The release rendered with ``overrides``, as ``helm upgrade --set`` would roll it out."""
        manifests = render({**self.values, **overrides}, release=RELEASE)
        # The chart keeps an installed release's generated Secrets (`lookup`), which an offline render
        # cannot see: every render after the first reads the Secrets the first one "installed".
        if not self.secrets:
            self.secrets = by_kind(manifests, "Secret")
        return ChartWiring(self.engine, manifests, self.hosts, self.root, secrets=self.secrets)

    def start(
        self, c: Container, name: str, wiring: ChartWiring, ready: bool = True, **extra: str
    ) -> ContainerRun:
        # Client settings the harness's broker needs, if any (the broker's env minus its address).
        quirks = {k: v for k, v in self.kafka.env().items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        # The other services reach the publisher through `hosts`, so its port is fixed in advance.
        ports = None
        if c.component == "profile-publisher":
            ports = {int(p["containerPort"]): self.publisher_port for p in c.spec["ports"]}
        run = wiring.container(c, name, extra_env={**quirks, **extra}, ports=ports).start()
        self.runs[name] = run
        return run.wait_ready(240) if ready else run

    def stop(self, name: str) -> ContainerRun:
        run = self.runs.pop(name)
        run.stop()
        self.finished.append(run)
        return run

    def docs(self, doc_type: str) -> list[dict[str, Any]]:
        return self.search.docs_of_type(self.index, doc_type)

    def log_events(self, name: str, event: str) -> list[dict[str, Any]]:
        run = self.runs.get(name) or next(r for r in self.finished if r.name == name)
        records = []
        for line in run.logs().splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                record = json.loads(line)
                if record.get("event") == event:
                    records.append(record)
        return records


def _main(manifests_wiring: ChartWiring, component: str) -> Container:
    return next(c for c in service_containers(manifests_wiring.manifests, component) if not c.init)


@pytest.fixture(scope="module")
def system(
    docker_engine: DockerEngine,
    service_images: dict[str, BuildResult],
    kafka: KafkaBroker,
    search: SearchServer,
    output_root: Path,
) -> Iterator[System]:
    run_id = uuid.uuid4().hex[:8]
    root = output_root / f"containers-{run_id}"
    root.mkdir(parents=True)
    values = {
        # unique names on the shared harness components
        "kafka.topics.visits.name": f"visits-{run_id}",
        "kafka.topics.processedVisits.name": f"processed_visits-{run_id}",
        "observer.settings.group_id": f"observer-{run_id}",
        "observer.settings.index": f"obs-{run_id}",
        # test-sized load, windows and alert timing
        "generator.settings.rate": str(RATE),
        "generator.settings.seed": "11",
        "generator.settings.missing_fields_percent": "8",
        "generator.settings.duplicate_percent": "4",
        "generator.settings.unparseable_percent": "3",
        "visitsWriter.settings.trigger_interval_seconds": "1",
        "passthrough.settings.trigger_interval_seconds": "1",
        "observer.settings.window_records": "200",
        "observer.settings.window_seconds": "4",
        "observer.settings.lag_interval_seconds": "2",
        "observer.settings.profile_max_rows": "50",
        "alerts.slaMiss.thresholdMs": str(SLA_MS),
        "alerts.slaMiss.for": "5s",
        "alerts.stalled.afterSeconds": "3600",
    }
    gateway = Pushgateway.start(root)
    rules = render_rule_files(root / "rules", values)
    prometheus = Prometheus.start(root / "prometheus", rules, pushgateway=gateway.url)
    publisher_port = free_port()
    fullname = f"{RELEASE}-streamwatch"
    hosts = {
        f"{fullname}-kafka-kafka-bootstrap:9092": kafka.bootstrap,
        f"http://{fullname}-pushgateway:9091": gateway.url,
        f"http://{fullname}-elasticsearch:9200": search.url,
        f"http://{fullname}-profile-publisher:8000": f"http://127.0.0.1:{publisher_port}",
    }
    sys_ = System(
        docker_engine, kafka, search, gateway, prometheus, root, run_id, values, hosts, publisher_port
    )
    wiring = sys_.wiring()
    for topic in by_kind(wiring.manifests, "KafkaTopic"):  # what the Strimzi topic operator does
        kafka.create_topic(topic["spec"]["topicName"], partitions=topic["spec"]["partitions"])
    try:
        sys_.start(_main(wiring, "profile-publisher"), sys_.pod("profile-publisher", 0), wiring)
        init = next(c for c in service_containers(wiring.manifests, "visits-writer") if c.init)
        tables = wiring.container(init, sys_.pod("visits-writer", "init")).start()
        assert tables.wait_exit(240) == 0, tables.logs()[-3000:]
        sys_.finished.append(tables)
        sys_.start(_main(wiring, "visits-writer"), sys_.pod("visits-writer", 0), wiring)
        sys_.start(_main(wiring, "passthrough"), sys_.pod("passthrough", 0), wiring)
        sys_.start(_main(wiring, "observer"), sys_.pod("observer", 0), wiring)
        sys_.start(_main(wiring, "generator"), sys_.pod("generator", 0), wiring)
        yield sys_
    finally:
        for name in list(sys_.runs):
            try:
                sys_.stop(name)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others; the error is printed
                print(f"stopping {name} failed: {exc!r}")
        report = {
            r.name: {
                "ready_s": r.ready_seconds,
                "stop_s": r.stop_seconds,
                "exit": r.exit_code,
                "peak_mib": round(r.peak_memory_bytes / 2**20) if r.peak_memory_bytes else None,
            }
            for r in sys_.finished
        }
        (root / "containers.json").write_text(json.dumps(report, indent=2))
        print(f"\ncontainers (start → ready, stop, exit, peak memory):\n{json.dumps(report, indent=1)}")
        for r in sys_.finished:
            (root / f"{r.name}.log").write_text(r.logs())
            docker_engine.remove(r.name)
        prometheus.stop()
        gateway.stop()


def _delivered(system: System, generator: str) -> float:
    """Records the broker has acknowledged to the generator, from its own `/metrics`."""
    run = system.runs[generator]
    (port,) = run.ports  # the generator's one port: ops (probes and metrics)
    text = http_get(run.url(port, "/metrics")).decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "generator_records_total"
    )


def _windows_by_replica(system: System) -> dict[str, int]:
    """Window documents written so far, per observer replica."""
    counts: dict[str, int] = {}
    for doc in system.docs("window"):
        counts[doc["replica"]] = counts.get(doc["replica"], 0) + 1
    return counts


def extra_observers(system: System) -> list[str]:
    return [system.pod("observer", i) for i in (1, 2)]


def test_observer_scales_up_to_three_while_visits_flow(system: System) -> None:
    wiring = system.wiring()
    observer = _main(wiring, "observer")
    wait_until(lambda: system.docs("window"), 180, interval=1, what="a first window document")
    partitions = len(system.kafka.end_offsets(system.processed))
    for name in extra_observers(system):
        system.start(observer, name, wiring)

    def new_writers() -> set[str]:
        return {name for name in extra_observers(system) if system.log_events(name, "window_written")}

    wanted = min(
        len(extra_observers(system)), partitions - 1
    )  # the first replica keeps at least one partition
    wait_until(lambda: len(new_writers()) >= wanted, 180, interval=1, what=f"{wanted} new replicas writing")
    assert {d["replica"] for d in system.docs("window")} >= new_writers()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_broker_restart_under_the_running_system_everything_recovers(system: System, how: str) -> None:
    """The broker goes down and comes back on its log directory while the generator, both Spark jobs and
    three observer replicas run: each resumes by itself (the generator delivers again, every replica
    writes windows again), and no container restarts or exits."""
    checkpoint = system.root / "claims" / f"{RELEASE}-streamwatch-passthrough"
    writer = system.pod("visits-writer", 0)
    generator = system.pod("generator", 0)
    copied_before = sum((read_committed(checkpoint, system.visits).offsets or {}).values())
    batches_before = len(system.log_events(writer, "batch_written"))
    delivered_before = _delivered(system, generator)
    windows_before = _windows_by_replica(system)
    assert len(windows_before) == 3, windows_before  # every replica is observing
    down = time.monotonic()
    if how == "SIGKILL":
        system.kafka.kill()
    system.kafka.restart()  # SIGTERM (a clean stop) unless already killed; same ports and log directory
    up = time.monotonic()

    def resumed() -> dict[str, bool]:
        committed = read_committed(checkpoint, system.visits).offsets or {}
        windows = _windows_by_replica(system)
        return {
            # more than was queued while the broker was down: records sent after it came back
            "generator": _delivered(system, generator) > delivered_before + RATE * (up - down + 1),
            "passthrough": sum(committed.values()) > copied_before,
            "writer": len(system.log_events(writer, "batch_written")) > batches_before,
            **{replica: windows.get(replica, 0) > n for replica, n in windows_before.items()},
        }

    recovered: dict[str, float] = {}

    def all_resumed() -> bool:
        for what, done in resumed().items():
            if done and what not in recovered:
                recovered[what] = round(time.monotonic() - up, 1)
        return len(recovered) == 3 + len(windows_before)

    wait_until(all_resumed, 180, interval=1, what=f"every service resuming after a broker {how}")
    print(f"\nbroker {how}: down {up - down:.1f}s; resumed after the broker was ready (s): {recovered}")
    for run in system.runs.values():
        state = system.engine.inspect(run.name)
        assert state["State"]["Running"] and state["RestartCount"] == 0, f"{run.name}: {state['State']}"


def test_observer_scales_back_to_one_while_visits_flow(system: System) -> None:
    for name in extra_observers(system):
        run = system.stop(name)
        assert run.exit_code == 0, run.logs()[-3000:]
        assert run.stop_seconds is not None and run.stop_seconds < run.grace_seconds
    generator = system.runs[system.pod("generator", 0)]
    assert system.engine.inspect(generator.name)["State"]["Running"], "scaled down after the data stopped"
    every = list(range(len(system.kafka.end_offsets(system.processed))))

    def owns_all() -> bool:
        assigned = system.log_events(system.pod("observer", 0), "partitions_assigned")
        return bool(assigned) and assigned[-1]["owned"] == every

    wait_until(owns_all, 60, interval=1, what="the remaining replica owning every partition again")


def test_observation_path_counts_exactly_what_the_generator_produced(system: System) -> None:
    name = system.pod("generator", 0)
    generator = system.stop(name)
    assert generator.exit_code == 0, generator.logs()[-3000:]
    (summary,) = system.log_events(name, "generator_summary")
    total = summary["delivered"]
    ends = system.kafka.end_offsets(system.visits)
    assert total > 0 and sum(ends.values()) == total

    def covered() -> int:
        return sum(e - s + 1 for ranges in coverage(system.docs("window")).values() for s, e in ranges)

    wait_until(lambda: covered() >= total, 240, interval=1, what="windows covering every record")
    windows = system.docs("window")
    copied = system.kafka.end_offsets(system.processed)
    assert copied == ends, "the passthrough copies partition for partition"
    assert_windows_count_what_was_produced(windows, ends, summary["by_partition_and_kind"])
    for partition, kinds in summary["by_partition_and_kind"].items():
        mine = [w for w in windows if w["partition"] == int(partition)]
        # A duplicate counts only within its window: never more than the generator made.
        assert sum(w["duplicates"] for w in mine) <= kinds.get("duplicate", 0)
    assert sum(w["duplicates"] for w in windows) > 0

    def lag_settled() -> bool:
        newest: dict[int, dict[str, Any]] = {}
        for doc in system.docs("lag"):
            if doc["partition"] not in newest or doc["@timestamp"] > newest[doc["partition"]]["@timestamp"]:
                newest[doc["partition"]] = doc
        return set(newest) == set(ends) and all(d.get("lag_offsets") == 0 for d in newest.values())

    wait_until(lag_settled, 120, interval=1, what="lag 0 on every partition")


def test_delta_path_holds_every_record_once(system: System) -> None:
    claim = system.root / "claims" / f"{RELEASE}-streamwatch-visits-writer"
    paths = WriterPaths(claim)  # the chart's /data/delta/visits is <claim>/delta/visits
    produced = system.kafka.end_offsets(system.visits)
    total = sum(produced.values())

    def complete() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        visits, dead = written(paths)
        return (visits, dead) if len(visits) + len(dead) >= total else None

    result = wait_until(complete, 240, interval=2, what="the Delta tables holding every record")
    assert isinstance(result, tuple)
    visits, dead = result
    coordinates = [(r["partition"], r["offset"]) for r in visits + dead]
    assert len(coordinates) == len(set(coordinates)), "a (partition, offset) was written twice"
    assert set(coordinates) == {(p, o) for p, end in produced.items() for o in range(end)}
    assert dead and all(r["reason"] for r in dead)


def test_profile_reports_reach_the_publisher_and_its_index_lists_them(system: System) -> None:
    url = f"http://127.0.0.1:{system.publisher_port}"

    def listed() -> list[dict[str, Any]]:
        return list(json.loads(http_get(f"{url}/api/reports?limit=500"))["reports"])

    reports = wait_until(listed, 120, interval=1, what="profile reports in the publisher")
    assert isinstance(reports, list)
    page = http_get(f"{url}/").decode()
    first = reports[0]
    assert first["id"] in page
    assert b"<html" in http_get(f"{url}/reports/{first['id']}")[:5000].lower()


def test_containers_log_json_stay_in_their_mounts_run_as_10001_and_stop_cleanly(system: System) -> None:
    for run in list(system.runs.values()):
        assert run.process_uids() == {10001}, run.name
        assert run.changed_paths() == [], f"{run.name} wrote outside its mounts"
    for name in list(system.runs):
        run = system.stop(name)
        assert run.exit_code == 0, f"{name} exited {run.exit_code}:\n{run.logs()[-3000:]}"
        assert run.stop_seconds is not None and run.stop_seconds < run.grace_seconds, name
    for run in system.finished:
        for line in run.logs().splitlines():
            if not line.strip():
                continue
            try:
                assert isinstance(json.loads(line), dict)
            except (ValueError, AssertionError):
                pytest.fail(f"{run.name} logged a line that is not a JSON object: {line[:300]!r}")
