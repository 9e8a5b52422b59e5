"""Real Prometheus and Pushgateway processes (Debian packages) on loopback ports."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streamwatch_dev.process import ComponentStartError, ManagedProcess, free_port


def _binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if not found:
        raise ComponentStartError(f"{name} not found: install the Debian package {package} (see .ci/run)")
    return found


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return bytes(resp.read())


@dataclass
class Pushgateway:
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, log_dir: Path, port: int | None = None) -> Pushgateway:
        port = port or free_port()
        process = ManagedProcess(
            "pushgateway",
            [
                _binary("prometheus-pushgateway", "prometheus-pushgateway"),
                f"--web.listen-address=127.0.0.1:{port}",
                # Debian's build defaults to /var/lib/prometheus/pushgateway.data, which every gateway
                # started on the machine would share (and reload: stale groups from other runs).
                "--persistence.file=",
            ],
            log_dir / f"pushgateway-{port}.log",
        )
        gateway = cls(process, port)
        process.start(ready=gateway._ready, timeout=30)
        return gateway

    def _ready(self) -> bool:
        return http_get(f"{self.url}/-/ready") is not None

    def restart(self) -> None:
        self.process.start(ready=self._ready, timeout=30)

    def stop(self) -> None:
        self.process.stop()

    def metrics_text(self) -> str:
        return http_get(f"{self.url}/metrics").decode()

    def wipe(self) -> None:
        req = urllib.request.Request(f"{self.url}/api/v1/admin/wipe", method="PUT")
        urllib.request.urlopen(req, timeout=5).close()


@dataclass
class Prometheus:
    """Prometheus with 1 s scrape and evaluation, scraping the given targets and loading the given rules."""

    process: ManagedProcess
    port: int
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        work_dir: Path,
        rule_files: list[Path],
        pushgateway: str | None = None,
        targets: list[str] | None = None,
        interval: str = "1s",
    ) -> Prometheus:
        port = free_port()
        work_dir.mkdir(parents=True, exist_ok=True)
        scrape_configs: list[dict[str, Any]] = []
        if pushgateway:
            scrape_configs.append(
                {
                    "job_name": "pushgateway",
                    "honor_labels": True,
                    "static_configs": [{"targets": [pushgateway.removeprefix("http://")]}],
                }
            )
        if targets:
            scrape_configs.append({"job_name": "services", "static_configs": [{"targets": targets}]})
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": scrape_configs,
        }
        config_path = work_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        process = ManagedProcess(
            "prometheus",
            [
                _binary("prometheus", "prometheus"),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={work_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            work_dir / "prometheus.log",
        )
        prom = cls(process, port, config_path)
        process.start(ready=prom._ready, timeout=60)
        return prom

    def _ready(self) -> bool:
        return http_get(f"{self.url}/-/ready") is not None

    def stop(self) -> None:
        self.process.stop()

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = json.loads(http_get(f"{self.url}/api/v1/{path}{query}"))
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def alerts(self, name: str | None = None) -> list[dict[str, Any]]:
        alerts = list(self.api("alerts")["alerts"])
        return [a for a in alerts if name is None or a["labels"].get("alertname") == name]

    def alert_state(self, name: str) -> str:
        """``inactive``, ``pending`` or ``firing`` (the most advanced of the alert's series)."""
        states = {a["state"] for a in self.alerts(name)}
        for state in ("firing", "pending"):
            if state in states:
                return state
        return "inactive"


def promtool() -> str:
    return _binary("promtool", "prometheus")
