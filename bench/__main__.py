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
from bench.report import BenchRun
from bench.stack import Infra
from bench.targets import targets
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


def _selection(text: str | None) -> list[str]:
    if not text:
        return list(BENCHMARKS)
    chosen = [part.strip().replace("_", "-") for part in text.split(",") if part.strip()]
    unknown = [c for c in chosen if c not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    return [name for name in BENCHMARKS if name in chosen]


def _run_one(
    name: str, rounds: tuple[int, int], run: BenchRun, infra: Infra, work: Path, *, quick: bool
) -> None:
    """Round ``rounds[0]`` of ``rounds[1]`` of one benchmark; a failure is recorded, the others run."""
    round_, repeat = rounds
    if name in run.errors:
        return  # it failed in an earlier round: its later rounds would fail the same way
    logger.info(
        "benchmark_started", extra={"benchmark": name, "round": f"{round_}/{repeat}", "logs": str(work)}
    )
    started = time.monotonic()
    # Each round in its own directory: a checkpoint or table left by an earlier round would be resumed.
    round_work = work / f"round-{round_}" if repeat > 1 else work
    round_work.mkdir(parents=True, exist_ok=True)
    try:
        BENCHMARKS[name](run, infra, round_work, quick)
    except Exception as exc:  # noqa: BLE001 - report the failure, run the other benchmarks
        run.errors[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        logger.error("benchmark_failed", extra={"benchmark": name, "traceback": traceback.format_exc()})
    run.durations_s[name] = round(run.durations_s.get(name, 0.0) + time.monotonic() - started, 1)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks; exit 1 when one of them failed to run (a missed target is not a failure)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small data, for smoke tests (not comparable)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="rounds of every chosen benchmark, side by side; each number is the median (default 3, quick 1)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--work-dir", type=Path, default=None, help="logs and data (default test-output/)")
    args = parser.parse_args(argv)
    configure_logging("bench", "console", "INFO")
    chosen = _selection(args.only)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1:
        raise SystemExit(f"--repeat must be at least 1, got {repeat}")
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
        # Round after round of every benchmark, so each case's rounds share the run's conditions.
        for round_ in range(1, repeat + 1):
            for name in chosen:
                _run_one(name, (round_, repeat), run, infra, work, quick=args.quick)
    finally:
        infra.stop()
    run.keep_medians()
    run.targets = targets(run)
    run.load_average_end = machine.load_average()
    run.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    json_path, md_path = run.write(args.results_dir, stamp)
    print(run.markdown())
    print(f"\nJSON: {json_path}\nMarkdown: {md_path}\nLogs: {work}")
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
