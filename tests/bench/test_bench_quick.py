"""The bench code cannot rot: the cheapest benchmark (observer quality statistics) runs in quick mode as
``make bench`` would run it, against real components, and must produce a sane table and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from streamwatch_dev.process import REPO_ROOT


def test_quick_observer_bench_writes_table_and_json(output_dir: Path) -> None:
    results = output_dir / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--only",
            "observer",
            "--quick",
            "--results-dir",
            str(results),
            "--work-dir",
            str(output_dir / "work"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    (output_dir / "bench.out").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    assert "| observer | quality only | records/s per replica |" in done.stdout
    assert "| observer with 100k-row profiles: peak memory (PSS summed: observer + profile worker) |" in (
        done.stdout
    )
    data = json.loads((results / "latest.json").read_text())
    assert data["mode"] == "quick"
    assert data["errors"] == {}
    machine = data["machine"]
    assert machine["cores"] >= 1 and machine["memory_gib"] > 0 and machine["cpu_model"]
    assert machine["python"].startswith("3.11")
    assert "openjdk" in machine["java"].lower() or "java" in machine["java"].lower()
    assert machine["libraries"]["confluent-kafka"] == "2.16.1"
    assert len(data["load_average_start"]) == 3 and len(data["load_average_end"]) == 3

    rates = {
        m["case"]: m["value"]
        for m in data["measurements"]
        if m["benchmark"] == "observer" and m["metric"] == "records/s per replica"
    }
    assert set(rates) == {"raw consume loop", "quality only", "quality + lag + drift"}
    assert all(0 < rate < 10_000_000 for rate in rates.values()), rates
    ratios = [m["value"] for m in data["measurements"] if m["metric"] == "ratio to raw consume loop"]
    assert len(ratios) == 2 and all(0 < r < 10 for r in ratios), ratios
    meter = [m for m in data["measurements"] if m["metric"] == "quality meter alone"]
    assert all(m["value"] > 0 for m in meter) and len(meter) == 2

    memory = [p for p in data["memory"] if p["service"] == "observer"]
    assert len(memory) == 2, memory
    for peak in memory:
        assert 30 < peak["peak_pss_mib"] <= peak["peak_rss_mib"] < 4096, peak
        assert peak["processes"] >= 1 and peak["breakdown"].startswith("streamwatch-obs"), peak
    cpu = [m["value"] for m in data["measurements"] if m["metric"] == "records per CPU-second"]
    assert len(cpu) == 3 and all(v > 0 for v in cpu), cpu

    verdicts = {t["name"]: t["verdict"] for t in data["targets"]}
    # Quick mode builds no 100k-row profile and runs no passthrough: those targets are not judged.
    profiles = "observer with 100k-row profiles: peak memory (PSS summed: observer + profile worker)"
    assert verdicts[profiles] == "not measured"
    better_memory = "passthrough at 100k records/trigger, better path: peak memory (PSS summed)"
    assert verdicts[better_memory] == "not measured"
    assert (results / "latest.md").read_text().startswith("Mode: quick")
