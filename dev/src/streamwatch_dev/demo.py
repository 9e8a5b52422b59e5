"""``make demo``: the embedded infrastructure and every service that exists, as local processes.

Starts the Kafka broker (Apache Kafka), the Pushgateway, the Elasticsearch-API server and Prometheus (with the
chart's alert rules), then each service of :data:`SERVICES` whose console script is installed and whose
``main`` module imports. Prints where to look, waits for Ctrl-C or SIGTERM, then stops everything.

Run: ``uv run --frozen python -m streamwatch_dev.demo [--services generator,observer] [--check]``.
A service's own prefixed variables in the caller's environment win over the demo's, e.g.
``GENERATOR_RATE=500 make demo``.

Adding a service: one :class:`ServiceSpec` line in :data:`SERVICES`, with a function from the running
infrastructure to the service's environment.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType

from streamwatch_dev.chart import render_rule_files
from streamwatch_dev.kafka import KAFKA_VERSION, KafkaBroker
from streamwatch_dev.process import REPO_ROOT, ComponentStartError, free_port, wait_until
from streamwatch_dev.prometheus import Prometheus, Pushgateway, http_get
from streamwatch_dev.search import SearchServer
from streamwatch_dev.services import VENV_BIN, ServiceProcess, service_env

DEMO_DIR = REPO_ROOT / ".demo"
TOPICS = ("visits", "processed_visits")
PROFILE_TOKEN = "demo-token"  # a local demo secret; the chart takes it from a Secret


@dataclass
class Infra:
    """What the services connect to, and the ops port each service gets (known before any starts)."""

    kafka: KafkaBroker
    pushgateway: Pushgateway
    search: SearchServer
    data_dir: Path
    ports: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceSpec:
    """How the demo runs one service: console script ``streamwatch-<name>``, module
    ``streamwatch_<name>.main``, environment built from the infrastructure."""

    name: str
    env: Callable[[Infra], dict[str, str]]
    setup_args: tuple[str, ...] | None = None  # a one-shot step run to completion first
    port_variable: str = "OPS_PORT"  # where the service's /healthz, /readyz, /metrics live
    ready_timeout: float = 60.0

    @property
    def script(self) -> str:
        return f"streamwatch-{self.name}"

    @property
    def module(self) -> str:
        return f"streamwatch_{self.name.replace('-', '_')}.main"

    @property
    def prefix(self) -> str:
        return f"{self.name.replace('-', '_').upper()}_"


def _spark(infra: Infra) -> dict[str, str]:
    return {"SPARK_LOCAL_IP": "127.0.0.1"}


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "generator",
        lambda infra: {
            "GENERATOR_RATE": "50",
            "GENERATOR_SKEW_PARTITION": "0",
            "GENERATOR_SKEW_SHARE_PERCENT": "50",
        },
    ),
    ServiceSpec(
        "profile-publisher",
        lambda infra: {
            "PROFILE_PUBLISHER_TOKEN": PROFILE_TOKEN,
            "PROFILE_PUBLISHER_HOST": "127.0.0.1",
            "PROFILE_PUBLISHER_PORT": str(infra.ports["profile-publisher"]),
            "PROFILE_PUBLISHER_PUBLIC_URL": f"http://127.0.0.1:{infra.ports['profile-publisher']}",
            "PROFILE_PUBLISHER_STORE_DIR": str(infra.data_dir / "reports"),
            "ELASTICSEARCH_URL": infra.search.url,
        },
        port_variable="PROFILE_PUBLISHER_PORT",
    ),
    ServiceSpec(
        "visits-writer",
        lambda infra: {
            **_spark(infra),
            "VISITS_WRITER_SPARK_MASTER": "local[2]",
            "VISITS_WRITER_CHECKPOINT_PATH": str(infra.data_dir / "checkpoints" / "visits-writer"),
            "VISITS_WRITER_VISITS_TABLE_PATH": str(infra.data_dir / "delta" / "visits"),
            "VISITS_WRITER_DEAD_LETTER_TABLE_PATH": str(infra.data_dir / "delta" / "visits_dead_letters"),
            "VISITS_WRITER_PUSHGATEWAY_URL": infra.pushgateway.url,
        },
        setup_args=("create-tables",),
        ready_timeout=180.0,
    ),
    ServiceSpec(
        "passthrough",
        lambda infra: {
            **_spark(infra),
            "PASSTHROUGH_SPARK_MASTER": "local[2]",
            "PASSTHROUGH_CHECKPOINT_PATH": str(infra.data_dir / "checkpoints" / "passthrough"),
            "PASSTHROUGH_PUSHGATEWAY_URL": infra.pushgateway.url,
        },
        ready_timeout=180.0,
    ),
    ServiceSpec(
        "observer",
        lambda infra: {
            "OBSERVER_CHECKPOINT_PATH": str(infra.data_dir / "checkpoints" / "passthrough"),
            "OBSERVER_WINDOW_SECONDS": "30",
            "OBSERVER_LAG_INTERVAL_SECONDS": "5",
            "OBSERVER_PROFILE_DIR": str(infra.data_dir / "profiles"),
            "ELASTICSEARCH_URL": infra.search.url,
            **(
                {
                    "OBSERVER_PROFILE_PUBLISHER_URL": f"http://127.0.0.1:{infra.ports['profile-publisher']}",
                    "OBSERVER_PROFILE_PUBLISHER_TOKEN": PROFILE_TOKEN,
                }
                if "profile-publisher" in infra.ports
                else {}
            ),
        },
        ready_timeout=120.0,
    ),
)


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


def importable(spec: ServiceSpec) -> str | None:
    """None if the service can run here, else why not (checked in a child: imports can be heavy)."""
    if not (VENV_BIN / spec.script).exists():
        return f"console script {spec.script} not installed"
    result = subprocess.run(
        [sys.executable, "-c", f"import {spec.module}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["import failed"])[-1]
        return f"{spec.module} does not import: {last}"
    return None


def _service_env(spec: ServiceSpec, infra: Infra) -> dict[str, str]:
    port = str(infra.ports[spec.name])
    env = {**infra.kafka.env(), **spec.env(infra), "OPS_PORT": port, spec.port_variable: port}
    # The caller's own prefixed settings win, so `GENERATOR_RATE=500 make demo` works.
    env.update({k: v for k, v in os.environ.items() if k.startswith(spec.prefix)})
    return service_env(**env)


class Demo:
    """Starts and stops everything; ``run`` blocks until Ctrl-C / SIGTERM (or returns at once with
    ``check``)."""

    def __init__(
        self, selected: list[ServiceSpec], partitions: int, check: bool, work_dir: Path = DEMO_DIR
    ) -> None:
        self.selected = selected
        self.partitions = partitions
        self.check = check
        self.work_dir = work_dir
        self.stop_requested = threading.Event()
        self.logs = work_dir / "logs"
        self.data = work_dir / "data"
        self.kafka: KafkaBroker | None = None
        self.pushgateway: Pushgateway | None = None
        self.search: SearchServer | None = None
        self.prometheus: Prometheus | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.skipped: dict[str, str] = {}
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
        except ComponentStartError as exc:
            say(f"demo: a component could not start: {exc}")
            return 1
        finally:
            self._stop()

    def _start(self) -> None:
        for path in (self.logs, self.data, self.work_dir / "prometheus"):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        say(f"streamwatch demo: starting (logs in {_shown(self.logs)}/)")
        with step(f"kafka broker (Apache Kafka {KAFKA_VERSION}, KRaft)"):
            self.kafka = KafkaBroker.start(self.logs)
        self._abort_if_asked()
        with step(f"topics {', '.join(TOPICS)} ({self.partitions} partitions each)"):
            for topic in TOPICS:
                self.kafka.create_topic(topic, partitions=self.partitions)
        with step("pushgateway"):
            self.pushgateway = Pushgateway.start(self.logs)
        self._abort_if_asked()
        with step("elasticsearch-API server (osmem + compat proxy)"):
            self.search = SearchServer.start(self.logs)
        self._abort_if_asked()

        infra = Infra(self.kafka, self.pushgateway, self.search, self.data)
        runnable = []
        for spec in self.selected:
            with step(f"checking {spec.name}"):
                reason = importable(spec)
            if reason:
                self.skipped[spec.name] = reason
                say(f"    skipped: {reason}")
                continue
            runnable.append(spec)
            infra.ports[spec.name] = free_port()
        self._abort_if_asked()

        with step("prometheus (chart alert rules, scraping pushgateway and services)"):
            rule_files = self._rule_files()
            self.prometheus = Prometheus.start(
                self.work_dir / "prometheus",
                rule_files,
                pushgateway=self.pushgateway.url,
                targets=[f"127.0.0.1:{port}" for port in infra.ports.values()],
            )
        if self.rules_note:
            say(f"    {self.rules_note}")

        for spec in runnable:
            self._abort_if_asked()
            self._start_service(spec, infra)

    def _rule_files(self) -> list[Path]:
        try:
            files = render_rule_files(self.work_dir / "prometheus" / "rules")
        except Exception as exc:  # noqa: BLE001 - the demo still runs without alerts; said on screen
            self.rules_note = f"no alert rules loaded: {exc}".splitlines()[0]
            return []
        self.rules_note = f"{len(files)} rule file(s): {', '.join(p.name for p in files)}"
        return files

    def _start_service(self, spec: ServiceSpec, infra: Infra) -> None:
        env = _service_env(spec, infra)
        if spec.setup_args is not None:
            with step(f"{spec.name} {' '.join(spec.setup_args)}"):
                setup = ServiceProcess(
                    spec.script, self.logs / f"{spec.name}-setup.log", env, list(spec.setup_args)
                ).start()
                code = setup.wait(spec.ready_timeout)
                if code != 0:
                    say(f"FAILED (exit {code}); see {setup.log_path}")
                    self.skipped[spec.name] = f"{' '.join(spec.setup_args)} exited with {code}"
                    return
        process = ServiceProcess(spec.script, self.logs / f"{spec.name}.log", env)
        try:
            with step(f"{spec.name} (waiting for /healthz)"):
                process.start_ready(timeout=spec.ready_timeout)
        except Exception as exc:  # noqa: BLE001 - one broken service must not stop the demo
            process.stop()
            self.skipped[spec.name] = str(exc).splitlines()[0]
            say(f"    {spec.name} did not start: {self.skipped[spec.name]} (log: {process.log_path})")
            return
        self.services[spec.name] = process

    def _print_table(self) -> None:
        assert self.kafka and self.pushgateway and self.search and self.prometheus
        rows = [
            ("Prometheus alerts", f"{self.prometheus.url}/alerts"),
            ("Prometheus queries", f"{self.prometheus.url}/graph"),
            ("Pushgateway", self.pushgateway.url),
            ("Elasticsearch API", f"{self.search.url}/_cat/indices?v"),
            ("Kafka bootstrap", f"{self.kafka.bootstrap}  (topics: {', '.join(TOPICS)})"),
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
        for name, reason in self.skipped.items():
            say(f"  {'not running: ' + name:<{width}}  {reason}")
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
        """Every selected service started and became ready: exit 0, else 1."""
        failed = dict(self.skipped)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run streamwatch locally: infrastructure and services.")
    parser.add_argument(
        "--services",
        default=",".join(s.name for s in SERVICES),
        help="comma-separated services to start (default: every one that exists)",
    )
    parser.add_argument("--partitions", type=int, default=3, help="partitions of each topic")
    parser.add_argument(
        "--check", action="store_true", help="start, wait until every service is ready, stop, exit 0/1"
    )
    parser.add_argument(
        "--dir", type=Path, default=DEMO_DIR, help="directory for logs and data (emptied at start)"
    )
    args = parser.parse_args(argv)
    wanted = {name.strip() for name in args.services.split(",") if name.strip()}
    unknown = wanted - {s.name for s in SERVICES}
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    selected = [s for s in SERVICES if s.name in wanted]
    return Demo(selected, args.partitions, args.check, args.dir.resolve()).run()


if __name__ == "__main__":
    raise SystemExit(main())
