"""Run streamwatch services as real subprocesses and read their JSON log lines."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from streamwatch_dev.process import REPO_ROOT, ManagedProcess, free_port, wait_until
from streamwatch_dev.prometheus import http_get

VENV_BIN = Path(sys.executable).parent


def service_env(**extra: str) -> dict[str, str]:
    """A clean environment for a service process: PATH, the venv's Python for Spark workers, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "LOG_", "OPS_"))}
    env.update(
        {
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "YDATA_PROFILING_NO_ANALYTICS": "1",
            "MPLBACKEND": "Agg",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class ServiceProcess(ManagedProcess):
    """A service started from its console script, with an ops port picked for it."""

    def __init__(
        self, script: str, log_path: Path, env: dict[str, str], args: list[str] | None = None
    ) -> None:
        self.ops_port = int(env.get("OPS_PORT") or free_port())
        env = {**env, "OPS_PORT": str(self.ops_port), "OPS_HOST": "127.0.0.1"}
        super().__init__(script, [str(VENV_BIN / script), *(args or [])], log_path, env=env, cwd=REPO_ROOT)

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.ops_port}"

    def start_ready(self, timeout: float = 60.0, path: str = "/healthz") -> ServiceProcess:
        """Start and wait until the ops endpoint answers 200 on ``path``."""
        self.start(ready=lambda: http_get(self.ops_url + path), timeout=timeout)
        return self

    def metrics(self) -> str:
        return http_get(self.ops_url + "/metrics").decode()

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines so far (non-JSON lines, e.g. from the JVM, are skipped)."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.log_records() if r.get("event") == event]

    def wait_for_event(self, event: str, timeout: float = 60.0, count: int = 1) -> list[dict[str, Any]]:
        def seen() -> list[dict[str, Any]] | None:
            if not self.running and self.proc is not None:
                found = self.events(event)
                if len(found) >= count:
                    return found
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}) before {event}:\n{self.tail()}"
                )
            found = self.events(event)
            return found if len(found) >= count else None

        result = wait_until(seen, timeout, interval=0.3, what=f"{self.name} log event {event!r} x{count}")
        assert isinstance(result, list)
        return result


def metric_value(metrics_text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format (labels must match exactly those given)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None
