"""``python -m bench [--only observer,sla] [--quick]``: run the benchmarks, print the tables, write JSON.

Run it with ``uv run python -m bench`` (the local runtime is the workspace package ``streamwatch_dev``);
``make bench`` does.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import machine, observer, passthrough, sla, visits_writer
from bench.report import BenchRun, Target
from bench.stack import Infra
from streamwatch_common.logs import configure_logging
from streamwatch_dev.process import OUTPUT_ROOT, REPO_ROOT

logger = logging.getLogger("bench")

Benchmark = Callable[[BenchRun, Infra, Path, bool], None]
BENCHMARKS: dict[str, Benchmark] = {
    "passthrough": passthrough.run,
    "visits-writer": visits_writer.run,
    "observer": observer.run,
    "sla": sla.run,
}
RESULTS_DIR = REPO_ROOT / "bench" / "results"
GIB_MIB = 1024.0


def _selection(text: str | None) -> list[str]:
    if not text:
        return list(BENCHMARKS)
    chosen = [part.strip().replace("_", "-") for part in text.split(",") if part.strip()]
    unknown = [c for c in chosen if c not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    return [name for name in BENCHMARKS if name in chosen]


def targets(run: BenchRun) -> list[Target]:
    """The issue's targets, filled in from what this run measured."""
    # The better connector is the one with the higher ratio at the largest batch; its numbers are judged.
    largest = max(
        (m for m in run.measurements if m.benchmark == "passthrough" and m.metric == "ratio to raw loop"),
        key=lambda m: (int(m.case.split()[-1].replace(",", "")), m.value),
        default=None,
    )
    big_batch = largest is not None and int(largest.case.split()[-1].replace(",", "")) >= 100_000
    better = largest.case.split()[0] if largest is not None else None
    profile_100k = run.value("observer", "quality + lag + profile 100k", "profile build (slowest)")
    latency = run.value("sla-detection", "above theoretical minimum", "excess")
    # Memory of the Spark jobs on the better path (a passthrough label starts with its connector; the
    # visits writer's jvm runs are labelled delta-spark).
    spark = [
        p
        for p in run.memory
        if (p.service == "passthrough" and p.load.split()[0] == better)
        or (p.service == "visits-writer" and ("delta-spark" in p.load) == (better == "jvm"))
    ]
    observer_100k = [p for p in run.memory if p.service == "observer" and "profile 100k" in p.load]
    return [
        Target(
            "passthrough ≥ 0.8x raw loop at 100k-record batches (better connector)",
            0.8,
            ">=",
            "x",
            largest.value if largest is not None and big_batch else None,
            f"connector: {better}" if big_batch else "quick mode: batches < 100k",
        ),
        Target(
            "observer quality statistics ≥ 200k records/s per replica",
            200_000,
            ">=",
            "records/s",
            run.value("observer", "quality only", "records/s per replica"),
        ),
        Target("100k-row profile ≤ 6 s", 6.0, "<=", "s", profile_100k),
        Target("detection latency ≤ theoretical minimum + 2 s", 2.0, "<=", "s over minimum", latency),
        Target(
            "Spark job peak memory ≤ 1 GiB on the better connector (PSS summed: shared pages once)",
            GIB_MIB,
            "<=",
            "MiB",
            max(p.peak_pss_mib for p in spark) if spark else None,
            f"connector: {better}" if better else "",
        ),
        Target(
            "observer peak RSS ≤ 700 MiB with 100k-row profiles (RSS summed: observer + profile worker)",
            700.0,
            "<=",
            "MiB",
            max(p.peak_rss_mib for p in observer_100k) if observer_100k else None,
        ),
        Target(
            "observer peak memory ≤ 700 MiB with 100k-row profiles (PSS summed: shared pages once)",
            700.0,
            "<=",
            "MiB",
            max(p.peak_pss_mib for p in observer_100k) if observer_100k else None,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks; exit 1 when one of them failed to run (a missed target is not a failure)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small data, for smoke tests (not comparable)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--work-dir", type=Path, default=None, help="logs and data (default test-output/)")
    args = parser.parse_args(argv)
    configure_logging("bench", "console", "INFO")
    chosen = _selection(args.only)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = args.work_dir or OUTPUT_ROOT / f"bench-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    run = BenchRun(
        mode="quick" if args.quick else "full",
        machine=machine.describe(),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        load_average_start=machine.load_average(),
    )
    infra = Infra(work)
    try:
        for name in chosen:
            logger.info("benchmark_started", extra={"benchmark": name, "logs": str(work)})
            started = time.monotonic()
            try:
                BENCHMARKS[name](run, infra, work, args.quick)
            except Exception as exc:  # noqa: BLE001 - report the failure, run the other benchmarks
                run.errors[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                logger.error(
                    "benchmark_failed", extra={"benchmark": name, "traceback": traceback.format_exc()}
                )
            run.durations_s[name] = round(time.monotonic() - started, 1)
    finally:
        infra.stop()
    run.targets = targets(run)
    run.load_average_end = machine.load_average()
    run.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    json_path, md_path = run.write(args.results_dir, stamp)
    print(run.markdown())
    print(f"\nJSON: {json_path}\nMarkdown: {md_path}\nLogs: {work}")
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
