"""``make demo``: the local infrastructure and every service of the rendered chart, as local processes.

Starts the Kafka broker (Apache Kafka) with the chart's topics, the Pushgateway, the Elasticsearch-API server
and Prometheus (with the chart's alert rules), then each service as the chart renders it: its command
(init containers first, run to completion) and its environment, made local by :mod:`streamwatch_dev.wiring`
the way the chart-driven test run does. The chart is the one wiring source: the demo's own choices are chart
values (``demo-values.yaml`` beside this module, then ``--values`` files and ``--set`` pairs).
Prints where to look, waits for Ctrl-C or SIGTERM, then stops everything.

Run: ``uv run --frozen python -m streamwatch_dev.demo [--services generator,observer] [--check]``.
A service's own prefixed variables in the caller's environment win over the chart's, e.g.
``GENERATOR_RATE=500 make demo``. When a service cannot be imported or exits while it starts, the demo stops
what it started and exits 1 with one line naming the service and why.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from types import FrameType

from streamwatch_dev.chart import render, render_rule_files
from streamwatch_dev.kafka import KAFKA_VERSION, KafkaBroker
from streamwatch_dev.process import REPO_ROOT, ComponentStartError, wait_until
from streamwatch_dev.prometheus import Prometheus, Pushgateway, http_get
from streamwatch_dev.search import SearchServer
from streamwatch_dev.services import VENV_BIN, ServiceProcess, service_env
from streamwatch_dev.wiring import (
    infrastructure_hosts,
    local_container,
    local_ports,
    probe_port,
    service_hosts,
)
from streamwatch_dev.workloads import Container, Manifest, by_kind, service_containers

DEMO_DIR = REPO_ROOT / ".demo"
DEMO_VALUES = Path(__file__).with_name("demo-values.yaml")
RELEASE = "demo"
# Start order: the publisher before the observer that uploads to it, the Spark jobs before the load.
SERVICES = ("profile-publisher", "visits-writer", "passthrough", "observer", "generator")
# Spark jobs start a JVM and a local session before they answer their probes.
READY_TIMEOUT = {"visits-writer": 180.0, "passthrough": 180.0, "observer": 120.0}
DEFAULT_READY_TIMEOUT = 60.0


class ServiceStartError(ComponentStartError):
    """A service of the demo could not start; ``reason`` is one line, ``log`` where to read more."""

    def __init__(self, service: str, reason: str, log: Path | None = None) -> None:
        self.service = service
        self.reason = reason
        self.log = log
        where = f" (log: {_shown(log)})" if log is not None else ""
        super().__init__(f"{service} could not start: {reason}{where}")


@dataclass(frozen=True)
class ServicePlan:
    """One service as the chart renders it: its init containers, its main container, its local ports."""

    name: str
    init: list[Container]
    main: Container
    ports: dict[int, int]  # container port -> local port

    @property
    def prefix(self) -> str:
        return f"{self.name.replace('-', '_').upper()}_"


def say(text: str) -> None:
    print(text, flush=True)


@contextmanager
def step(what: str) -> Iterator[None]:
    """Print ``what ...`` then ``ok (1.2s)`` or ``FAILED``: progress while things start and stop."""
    print(f"  {what} ...", end=" ", flush=True)
    started = time.monotonic()
    try:
        yield
    except BaseException:
        say("FAILED")
        raise
    say(f"ok ({time.monotonic() - started:.1f}s)")


def import_problem(script: str) -> str | None:
    """None if the console script is installed and its module imports, else why not (checked in a child
    process: a service's imports can be heavy, and a broken one must not take the demo down with it)."""
    if not (VENV_BIN / script).exists():
        return f"console script {script} is not installed (run make deps)"
    (entry,) = metadata.entry_points(group="console_scripts", name=script) or [None]
    if entry is None:
        return f"console script {script} has no entry point in this environment"
    result = subprocess.run(
        [sys.executable, "-c", f"import {entry.module}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no error output"])[-1]
        return f"{entry.module} does not import: {last}"
    return None


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    if not lines:
        return "no output"
    last = lines[-1]
    if last.startswith("{"):  # a JSON log line: its event and message say it shortest
        try:
            record = json.loads(last)
        except ValueError:
            return last[:300]
        fields = [str(record.get(k)) for k in ("event", "message", "error") if record.get(k)]
        return ": ".join(fields)[:300] or last[:300]
    return last[:300]


class Demo:
    """Starts and stops everything; ``run`` blocks until Ctrl-C / SIGTERM (or returns at once with
    ``check``)."""

    def __init__(
        self,
        selected: list[str],
        check: bool,
        work_dir: Path = DEMO_DIR,
        values_files: list[Path] | None = None,
        set_values: dict[str, str] | None = None,
    ) -> None:
        self.selected = selected
        self.check = check
        self.work_dir = work_dir
        self.values_files = [DEMO_VALUES, *(values_files or [])]
        self.set_values = set_values or {}
        self.stop_requested = threading.Event()
        self.logs = work_dir / "logs"
        self.data = work_dir / "data"
        self.kafka: KafkaBroker | None = None
        self.pushgateway: Pushgateway | None = None
        self.search: SearchServer | None = None
        self.prometheus: Prometheus | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.rules_note = ""

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stop_requested.is_set():
            say(f"\n{signal.Signals(signum).name} received: stopping ...")
        self.stop_requested.set()

    def _abort_if_asked(self) -> None:
        if self.stop_requested.is_set():
            raise KeyboardInterrupt

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self._start()
            self._print_table()
            if self.check:
                return self._check()
            self._watch()
            return 0
        except KeyboardInterrupt:
            return 130
        except ServiceStartError as exc:
            say(f"demo: {exc}")
            return 1
        except ComponentStartError as exc:
            say(f"demo: a component could not start: {exc}")
            return 1
        finally:
            self._stop()

    def _plan(self, manifests: list[Manifest]) -> list[ServicePlan]:
        plans = []
        for name in self.selected:
            containers = service_containers(manifests, name)
            mains = [c for c in containers if not c.init]
            if not mains:
                raise ServiceStartError(
                    name, "the rendered chart has no workload for it (disabled in the values?)"
                )
            if len(mains) > 1:
                raise ServiceStartError(name, f"the rendered chart has {len(mains)} main containers for it")
            plans.append(
                ServicePlan(name, [c for c in containers if c.init], mains[0], local_ports(mains[0]))
            )
        return plans

    def _start(self) -> None:
        for path in (self.logs, self.data, self.work_dir / "prometheus"):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        say(f"streamwatch demo: starting (logs in {_shown(self.logs)}/)")
        with step(f"chart (release {RELEASE}, {', '.join(_shown(p) for p in self.values_files)})"):
            try:
                manifests = render(self.set_values, self.values_files, release=RELEASE)
            except RuntimeError as exc:  # helm's own message, on the lines after the command
                detail = " ".join(str(exc).splitlines()[1:]).strip() or str(exc)
                raise ComponentStartError(f"the chart does not render: {detail}") from exc
            plans = self._plan(manifests)
        for plan in plans:  # before anything starts: a service that cannot run stops the demo at once
            with step(f"checking {plan.name}"):
                for script in {c.spec["command"][0] for c in [*plan.init, plan.main]}:
                    problem = import_problem(script)
                    if problem:
                        raise ServiceStartError(plan.name, problem)
        self._abort_if_asked()

        with step(f"kafka broker (Apache Kafka {KAFKA_VERSION}, KRaft)"):
            self.kafka = KafkaBroker.start(self.logs)
        self._abort_if_asked()
        topics = by_kind(manifests, "KafkaTopic")
        with step(f"topics {', '.join(t['spec']['topicName'] for t in topics)} (as the chart's KafkaTopics)"):
            for topic in topics:  # what the Strimzi topic operator does in the cluster
                self.kafka.create_topic(topic["spec"]["topicName"], partitions=topic["spec"]["partitions"])
        with step("pushgateway"):
            self.pushgateway = Pushgateway.start(self.logs)
        self._abort_if_asked()
        with step("elasticsearch-API server (osmem + compat proxy)"):
            self.search = SearchServer.start(self.logs)
        self._abort_if_asked()

        hosts = infrastructure_hosts(
            manifests,
            self.kafka.bootstrap,
            {"pushgateway": self.pushgateway.url, "elasticsearch": self.search.url},
        )
        for plan in plans:
            hosts.update(service_hosts(manifests, plan.main, plan.ports))

        with step("prometheus (chart alert rules, scraping pushgateway and services)"):
            rule_files = self._rule_files()
            targets = [f"127.0.0.1:{port}" for plan in plans if (port := probe_port(plan.main, plan.ports))]
            self.prometheus = Prometheus.start(
                self.work_dir / "prometheus", rule_files, pushgateway=self.pushgateway.url, targets=targets
            )
        if self.rules_note:
            say(f"    {self.rules_note}")

        for plan in plans:
            self._abort_if_asked()
            self._start_service(plan, manifests, hosts)

    def _rule_files(self) -> list[Path]:
        try:
            files = render_rule_files(
                self.work_dir / "prometheus" / "rules", self.set_values, self.values_files
            )
        except Exception as exc:  # noqa: BLE001 - the demo still runs without alerts; said on screen
            self.rules_note = f"no alert rules loaded: {exc}".splitlines()[0]
            return []
        self.rules_note = f"{len(files)} rule file(s): {', '.join(p.name for p in files)}"
        return files

    def _env(
        self, plan: ServicePlan, c: Container, manifests: list[Manifest], hosts: dict[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        local = local_container(c, manifests, hosts, self.data, plan.ports if not c.init else None)
        env = dict(local.env)
        ops = probe_port(c, plan.ports)
        if ops is not None:
            env["OPS_PORT"] = str(ops)  # where the runner and Prometheus find /healthz, /readyz, /metrics
        # The caller's own prefixed settings win, so `GENERATOR_RATE=500 make demo` works.
        env.update({k: v for k, v in os.environ.items() if k.startswith(plan.prefix)})
        return local.command, service_env(**env)

    def _start_service(self, plan: ServicePlan, manifests: list[Manifest], hosts: dict[str, str]) -> None:
        timeout = READY_TIMEOUT.get(plan.name, DEFAULT_READY_TIMEOUT)
        for c in plan.init:  # as the kubelet does: each init container runs to completion first
            command, env = self._env(plan, c, manifests, hosts)
            log = self.logs / f"{plan.name}-{c.spec['name']}.log"
            with step(f"{plan.name} init container {c.spec['name']} ({' '.join(command)})"):
                setup = ServiceProcess(command[0], log, env, command[1:]).start()
                try:
                    code = setup.wait(timeout)
                except subprocess.TimeoutExpired:
                    setup.stop()
                    raise ServiceStartError(
                        plan.name, f"init container {c.spec['name']} still running after {timeout:.0f}s", log
                    ) from None
                if code != 0:
                    raise ServiceStartError(
                        plan.name,
                        f"init container {c.spec['name']} exited with code {code}: {_last_line(log)}",
                        log,
                    )
        command, env = self._env(plan, plan.main, manifests, hosts)
        process = ServiceProcess(command[0], self.logs / f"{plan.name}.log", env, command[1:])
        with step(f"{plan.name} (waiting for /healthz)"):
            try:
                process.start_ready(timeout=timeout)
            except ComponentStartError as exc:
                process.stop()
                # a process that ended by itself has a code >= 0; one we stopped on a timeout, a signal's
                exit_code = process.proc.returncode if process.proc else None
                reason = (
                    f"exited with code {exit_code} during start: {_last_line(process.log_path)}"
                    if exit_code is not None and exit_code >= 0
                    else str(exc).splitlines()[0]
                )
                raise ServiceStartError(plan.name, reason, process.log_path) from exc
        self.services[plan.name] = process

    def _print_table(self) -> None:
        assert self.kafka and self.pushgateway and self.search and self.prometheus
        rows = [
            ("Prometheus alerts", f"{self.prometheus.url}/alerts"),
            ("Prometheus queries", f"{self.prometheus.url}/graph"),
            ("Pushgateway", self.pushgateway.url),
            ("Elasticsearch API", f"{self.search.url}/_cat/indices?v"),
            ("Kafka bootstrap", self.kafka.bootstrap),
        ]
        for name, process in self.services.items():
            rows.append((f"{name} /metrics", f"{process.ops_url}/metrics"))
            if name == "profile-publisher":
                rows.append(("profile reports", f"{process.ops_url}/"))
        for name, process in self.services.items():
            rows.append((f"{name} log", _shown(process.log_path)))
        rows.append(("infrastructure logs", f"{_shown(self.logs)}/"))
        rows.append(("prometheus log", _shown(self.prometheus.process.log_path)))
        width = max(len(what) for what, _ in rows)
        say("\nstreamwatch demo is running" + ("" if self.check else " — Ctrl-C stops everything"))
        say("")
        for what, where in rows:
            say(f"  {what:<{width}}  {where}")
        say("")

    def _watch(self) -> None:
        reported: set[str] = set()
        while not self.stop_requested.wait(1.0):
            for name, process in self.services.items():
                if not process.running and name not in reported:
                    reported.add(name)
                    code = process.proc.returncode if process.proc else None
                    say(f"! {name} exited with code {code}; see {process.log_path}")

    def _check(self) -> int:
        """Every selected service became ready: exit 0, else 1."""
        failed = {}
        for name, process in self.services.items():
            try:
                wait_until(partial(_ready, process), 120, what=f"{name} /readyz")
            except TimeoutError as exc:
                failed[name] = str(exc)
        for name, reason in failed.items():
            say(f"check: {name} not ready: {reason}")
        say("check: " + ("FAILED" if failed else f"all {len(self.services)} service(s) ready"))
        return 1 if failed else 0

    def _stop(self) -> None:
        say("stopping:")
        for name, process in reversed(self.services.items()):
            with step(name):
                process.stop(timeout=30)
        for what, component in (
            ("prometheus", self.prometheus),
            ("elasticsearch-API server", self.search),
            ("pushgateway", self.pushgateway),
            ("kafka broker", self.kafka),
        ):
            if component is not None:
                with step(what):
                    component.stop()
        say("streamwatch demo stopped")


def _shown(path: Path) -> str:
    """Paths inside the repository are shown relative to it (shorter, and what `make demo` users see)."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _ready(process: ServiceProcess) -> bool:
    try:
        return http_get(process.ops_url + "/readyz") is not None
    except urllib.error.URLError:
        return False


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run streamwatch locally: infrastructure and services, wired from the rendered chart."
    )
    parser.add_argument(
        "--services",
        default=",".join(SERVICES),
        help=f"comma-separated services to start (default: {','.join(SERVICES)})",
    )
    parser.add_argument(
        "--values", type=Path, action="append", default=[], help="chart values file (after demo-values.yaml)"
    )
    parser.add_argument(
        "--set",
        type=_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="chart value, as helm --set",
    )
    parser.add_argument(
        "--check", action="store_true", help="start, wait until every service is ready, stop, exit 0/1"
    )
    parser.add_argument(
        "--dir", type=Path, default=DEMO_DIR, help="directory for logs and data (emptied at start)"
    )
    args = parser.parse_args(argv)
    wanted = {name.strip() for name in args.services.split(",") if name.strip()}
    unknown = wanted - set(SERVICES)
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    selected = [name for name in SERVICES if name in wanted]
    demo = Demo(selected, args.check, args.dir.resolve(), [p.resolve() for p in args.values], dict(args.set))
    return demo.run()


if __name__ == "__main__":
    raise SystemExit(main())
