"""A repeated bench run reports each case once, as the median of its rounds, and the targets judge that;
two jobs run side by side are compared over the batches that ended while both ran."""

from __future__ import annotations

import pytest

from bench.report import BenchRun, PeakMemory
from bench.stack import overlap, process_role, reading_at, side_by_side, stamp
from bench.targets import better_passthrough, targets


def _run() -> BenchRun:
    return BenchRun(mode="full", machine={}, started_at="", load_average_start=[0.0, 0.0, 0.0])


def _memory(pss: float) -> PeakMemory:
    return PeakMemory("passthrough", "copy 100,000 records/trigger", pss + 100, pss, 5, "java")


def test_each_case_becomes_the_median_of_its_rounds() -> None:
    run = _run()
    for ratio, cpu, pss in ((0.9, 0.5, 1100.0), (0.7, 0.3, 900.0), (0.85, 0.45, 1000.0)):
        run.add("passthrough", "copy batch 100,000", "ratio to raw loop", ratio, "x")
        run.add("passthrough", "copy batch 100,000", "CPU ratio to raw loop", cpu, "x", note="steady")
        run.add("passthrough", "jvm batch 100,000", "ratio to raw loop", ratio / 2, "x")
        run.memory.append(_memory(pss))

    run.keep_medians()

    assert [(m.case, m.metric, m.value) for m in run.measurements] == [
        ("copy batch 100,000", "ratio to raw loop", 0.85),
        ("copy batch 100,000", "CPU ratio to raw loop", 0.45),
        ("jvm batch 100,000", "ratio to raw loop", 0.425),
    ]
    assert run.measurements[1].note == "steady; median of 3: 0.50 / 0.30 / 0.45"
    assert len(run.memory) == 1
    assert run.memory[0].peak_pss_mib == 1000.0
    assert run.memory[0].breakdown.endswith("PSS of the 3 rounds: 1100 / 900 / 1000 MiB")


def test_targets_judge_the_better_path_at_big_batches_only() -> None:
    run = _run()
    run.add("passthrough", "python batch 10,000", "ratio to raw loop", 0.95, "x")
    run.add("passthrough", "python batch 100,000", "ratio to raw loop", 0.4, "x")
    run.add("passthrough", "copy batch 100,000", "ratio to raw loop", 0.82, "x")
    run.add("passthrough", "copy batch 100,000", "CPU ratio to raw loop", 0.35, "x")
    run.memory.append(_memory(1500.0))

    assert better_passthrough(run) == "copy"
    verdicts = {t.name: (t.measured, t.verdict) for t in targets(run)}
    assert verdicts["passthrough at 100k records/trigger, better path: wall time vs the raw loop"] == (
        0.82,
        "pass",
    )
    cpu = "passthrough at 100k records/trigger, better path: records per CPU-second vs the raw loop"
    assert verdicts[cpu] == (0.35, "MISS")
    memory = "passthrough at 100k records/trigger, better path: peak memory (PSS summed)"
    assert verdicts[memory] == (1500.0, "MISS")
    assert verdicts["observer, quality + lag + drift, one replica"] == (None, "not measured")


def test_a_counter_is_read_between_the_samples_around_a_time() -> None:
    samples = [(10.0, 1.0), (10.5, 2.0), (11.0, 4.0)]

    assert reading_at(samples, 10.25) == 1.5
    assert reading_at(samples, 10.75) == 3.0
    assert reading_at(samples, 9.0) == 1.0  # before the first sample: the first
    assert reading_at(samples, 12.0) == 4.0  # after the last: the last
    assert reading_at([], 10.0) == 0.0


def test_a_python_process_is_named_by_its_module_or_script() -> None:
    daemon = ["/usr/bin/python3", "-u", "-m", "pyspark.daemon", "pyspark.worker"]
    assert process_role("python3.11", daemon) == "pyspark.daemon pyspark.worker"
    assert process_role("python3", ["/venv/bin/python3", "/venv/bin/streamwatch-visits-writer"]) == (
        "streamwatch-visits-writer"
    )
    assert process_role("java", ["java", "-cp", "x", "org.apache.spark.deploy.SparkSubmit"]) == "java"


def _batches(*ends: tuple[int, int]) -> list[dict[str, object]]:
    """Batch log lines ending ``second`` seconds after 12:00:00 UTC with ``records`` each."""
    return [{"ts": f"2026-12-07T12:00:{second:02d}+00:00", "records": records} for second, records in ends]


def test_side_by_side_jobs_are_compared_over_the_batches_that_ended_while_both_ran() -> None:
    base = stamp(_batches((0, 0))[0])  # 12:00:00 as Unix seconds
    first = _batches((2, 100), (5, 100), (8, 100), (11, 100), (14, 100))
    second = _batches((0, 0), (4, 100), (7, 100), (10, 100), (16, 100))
    # From 4 s (both past their first batch) to 14 s (the first job's last).
    parts = side_by_side({"first": first, "second": second})
    mine = parts["first"]
    assert (mine.records, mine.batches, mine.start, mine.end) == (400, 4, base + 2, base + 14)
    theirs = parts["second"]
    # Its batch ending at 16 s ran while the first job had stopped: left out; its empty batch never counts.
    assert (theirs.records, theirs.batches, theirs.start, theirs.end) == (200, 2, base + 4, base + 10)
    with pytest.raises(RuntimeError, match="no batch ended while both jobs ran"):
        overlap(first, base + 14, base + 14)
    with pytest.raises(RuntimeError, match="wrote no records"):
        side_by_side({"first": first, "idle": _batches((3, 0))})
