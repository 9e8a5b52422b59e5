"""``make demo`` as a user runs it (restricted to the generator so it stays quick)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from streamwatch_dev.process import REPO_ROOT


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "tests")}
    return subprocess.run(
        [sys.executable, "-m", "streamwatch_dev.demo", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_demo_starts_infrastructure_and_generator_then_stops_cleanly(output_dir: Path) -> None:
    result = run_demo("--services", "generator", "--check", "--dir", str(output_dir))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    # progress, component by component, in start order
    order = ["kafka broker", "pushgateway", "elasticsearch-API server", "prometheus", "generator (waiting"]
    positions = [out.index(what) for what in order]
    assert positions == sorted(positions), out
    # the table says where to look
    for label in (
        "Prometheus alerts",
        "Pushgateway",
        "Elasticsearch API",
        "generator /metrics",
        "generator log",
    ):
        assert label in out, out
    assert "/alerts" in out and "check: all 1 service(s) ready" in out
    assert "streamwatch demo stopped" in out
    # the generator ran against the demo's broker and shut down gracefully
    lines = (output_dir / "logs" / "generator.log").read_text().splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert "generator_started" in events and events[-1] == "generator_summary"


def test_demo_refuses_unknown_services() -> None:
    result = run_demo("--services", "nonsense", "--check")
    assert result.returncode == 2
    assert "unknown service(s): nonsense" in result.stderr
