"""``make demo`` as a user runs it (restricted to the generator so it stays quick): wired from the rendered
chart, and stopping with one clear line when a service cannot start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from streamwatch_dev.process import REPO_ROOT


def run_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamwatch_dev.demo", *args],
        env={**os.environ, **(env or {})},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def demo_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("demo: ")]


def test_demo_starts_infrastructure_and_generator_wired_by_the_chart_then_stops_cleanly(
    output_dir: Path,
) -> None:
    topic = f"demo-visits-{uuid.uuid4().hex[:6]}"
    result = run_demo(
        "--services",
        "generator",
        "--check",
        "--dir",
        str(output_dir),
        "--set",
        f"kafka.topics.visits.name={topic}",
        "--set",
        "generator.settings.rate=7",
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    # progress, component by component, in start order
    order = ["chart (release demo", "kafka broker", "pushgateway", "elasticsearch-API server", "prometheus"]
    positions = [out.index(what) for what in [*order, "generator (waiting"]]
    assert positions == sorted(positions), out
    # the topics are the chart's KafkaTopics
    (topics,) = [line for line in out.splitlines() if line.startswith("  topics ")]
    assert topic in topics and "KafkaTopics" in topics, out
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
    assert "streamwatch demo stopped" in out and "skipped" not in out
    # the generator ran with the chart's wiring (topic and rate from chart values) against the demo's
    # broker, and shut down gracefully
    records = [json.loads(line) for line in (output_dir / "logs" / "generator.log").read_text().splitlines()]
    (started,) = [r for r in records if r["event"] == "generator_started"]
    assert started["topic"] == topic and started["rate"] == 7, started
    assert records[-1]["event"] == "generator_summary"


def test_a_service_that_does_not_import_stops_the_demo_before_anything_starts(
    output_dir: Path, tmp_path: Path
) -> None:
    # a real broken import: a package of the same name first on the path
    shadow = tmp_path / "streamwatch_generator"
    shadow.mkdir()
    (shadow / "__init__.py").write_text('raise ImportError("broken on purpose")\n')
    result = run_demo(
        "--services", "generator", "--check", "--dir", str(output_dir), env={"PYTHONPATH": str(tmp_path)}
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert demo_lines(result.stdout) == [
        "demo: generator could not start: streamwatch_generator.main does not import:"
        " ImportError: broken on purpose"
    ], result.stdout
    assert "kafka broker" not in result.stdout and "skipped" not in result.stdout


def test_a_service_that_exits_during_start_stops_everything_with_one_line(output_dir: Path) -> None:
    result = run_demo(
        "--services", "generator", "--check", "--dir", str(output_dir), env={"GENERATOR_RATE": "fast"}
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    (line,) = demo_lines(out)
    assert line.startswith("demo: generator could not start: exited with code 2 during start: "), line
    log = (output_dir / "logs" / "generator.log").relative_to(REPO_ROOT)
    assert "GENERATOR_RATE" in line and line.endswith(f"(log: {log})"), line
    # everything started before it is stopped again
    stopping = out[out.index("stopping:") :]
    for what in ("prometheus", "elasticsearch-API server", "pushgateway", "kafka broker"):
        assert f"  {what} ... ok" in stopping, out
    assert "streamwatch demo stopped" in out and "check:" not in out


def test_demo_refuses_unknown_services() -> None:
    result = run_demo("--services", "nonsense", "--check")
    assert result.returncode == 2
    assert "unknown service(s): nonsense" in result.stderr
