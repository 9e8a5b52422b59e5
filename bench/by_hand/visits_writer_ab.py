"""Before/after benchmark of the visits writer: rows/s into Delta, batch durations, peak memory.

Runs the real service (``streamwatch-visits-writer``) once per variant against one pre-loaded topic on a
real broker, in one process so every variant sees the same machine. A variant is a name, extra
environment variables and optionally a source directory put first on ``PYTHONPATH`` (a copy of an older
``streamwatch_visits_writer`` package: the baseline).

    cp -r services/visits-writer/src /tmp/vw-base/          # before changing the code
    uv run python -m bench.by_hand.visits_writer_ab \\
        --variant base:/tmp/vw-base/src --variant new

Reuses the measuring helpers of ``bench/`` (read-only). Not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.stack import Infra, run_until_records, steady
from streamwatch_dev.services import service_env


@dataclass
class Result:
    """One variant's numbers (steady part: after the first, warm-up batch)."""

    variant: str
    rows_per_s: float
    rows_per_cpu_s: float
    batches: int
    batch_seconds_median: float
    read_parse_seconds_median: float
    delta_write_seconds_median: float
    peak_rss_mib: float
    peak_pss_mib: float
    pss_breakdown: str
    processes: int


def _variant(text: str) -> tuple[str, dict[str, str], str | None]:
    # name[:src_dir][,KEY=VALUE...]
    head, *pairs = text.split(",")
    name, _, src = head.partition(":")
    env = dict(pair.split("=", 1) for pair in pairs)
    return name, env, src or None


def run_variant(
    infra: Infra,
    work: Path,
    topic: str,
    *,
    name: str,
    env_extra: dict[str, str],
    src: str | None,
    total: int,
    batch: int,
) -> Result:
    """Run the writer until ``total`` records are written; the numbers of its steady part."""
    root = work / name
    extra = dict(env_extra)
    if src:
        extra["PYTHONPATH"] = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    defaults = {
        "VISITS_WRITER_SOURCE_TOPIC": topic,
        "VISITS_WRITER_VISITS_TABLE_PATH": str(root / "visits"),
        "VISITS_WRITER_DEAD_LETTER_TABLE_PATH": str(root / "dead_letters"),
        "VISITS_WRITER_CHECKPOINT_PATH": str(root / "checkpoint"),
        "VISITS_WRITER_SPARK_MASTER": "local[2]",
        "VISITS_WRITER_TRIGGER_INTERVAL_SECONDS": "0",
        "VISITS_WRITER_MAX_RECORDS_PER_TRIGGER": str(batch),
    }
    env = service_env(**{**infra.kafka.env(), **defaults, **extra})
    batches, rss = run_until_records(
        "streamwatch-visits-writer",
        work / f"{name}.log",
        env,
        event="batch_written",
        total=total,
        timeout=900,
    )
    part = steady(batches)
    cpu = rss.cpu_between(part.start, part.end)
    busy = [b for b in batches if int(b.get("records", 0)) > 0][1:]

    def median(key: str) -> float:
        return round(statistics.median(float(b[key]) for b in busy), 3)

    return Result(
        name,
        round(part.rate),
        round(part.records / max(1e-6, cpu)),
        part.batches,
        median("seconds"),
        median("read_parse_seconds"),
        median("delta_write_seconds"),
        rss.peak_mib,
        rss.peak_pss_mib,
        rss.breakdown,
        rss.peak_processes,
    )


def main() -> None:
    """Parse the variants, load the topic once, run each variant, print a Markdown table and JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", action="append", required=True, help="name[:src_dir][,KEY=VALUE...]")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=25_000)
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = Path("test-output") / f"bench-visits-writer-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    infra = Infra(work)
    results: list[Result] = []
    try:
        topic = infra.visits_topic(args.records)
        for text in args.variant:
            name, env, src = _variant(text)
            results.append(
                run_variant(
                    infra,
                    work,
                    topic,
                    name=name,
                    env_extra=env,
                    src=src,
                    total=args.records,
                    batch=args.batch,
                )
            )
            print(json.dumps(asdict(results[-1])), flush=True)
    finally:
        infra.stop()
    print(f"\n{args.batch:,} records/trigger, {args.records:,} records, load {os.getloadavg()}\n")
    print("| variant | rows/s | rows/CPU-s | batch s | read+parse s | delta s | peak RSS MiB | PSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r.variant} | {r.rows_per_s:,.0f} | {r.rows_per_cpu_s:,.0f} | {r.batch_seconds_median} | "
            f"{r.read_parse_seconds_median} | {r.delta_write_seconds_median} | {r.peak_rss_mib:,.0f} | "
            f"{r.peak_pss_mib:,.0f} ({r.pss_breakdown}; {r.processes} processes) |"
        )
    (work / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
