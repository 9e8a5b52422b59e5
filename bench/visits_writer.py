"""Visits writer rows/s into Delta (delta-rs) with the SLA listener off and on: the listener's overhead.

Both runs read the same pre-loaded topic into fresh tables; the listener run pushes every micro-batch's
metrics to a real Pushgateway. Order alternates (off, on, off, on in the full run) so a change of the
machine's load during the run does not land on one side only.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.report import BenchRun, PeakMemory
from bench.stack import Infra, PeakRss, stamp, steady_rate, wait_records
from harness.services import ServiceProcess, service_env

NAME = "visits-writer"


def _run_writer(
    infra: Infra, work: Path, topic: str, *, total: int, batch: int, listener: bool, run_id: str
) -> tuple[float, float, PeakRss]:
    root = work / f"writer-{run_id}"
    extra = {"VISITS_WRITER_PUSHGATEWAY_URL": infra.pushgateway.url} if listener else {}
    env = service_env(
        **infra.kafka_env(),
        VISITS_WRITER_TOPIC=topic,
        VISITS_WRITER_VISITS_TABLE_PATH=str(root / "visits"),
        VISITS_WRITER_DEAD_LETTER_TABLE_PATH=str(root / "dead_letters"),
        VISITS_WRITER_CHECKPOINT_PATH=str(root / "checkpoint"),
        VISITS_WRITER_SPARK_MASTER="local[2]",
        VISITS_WRITER_TRIGGER_INTERVAL_SECONDS="0",
        VISITS_WRITER_MAX_RECORDS_PER_TRIGGER=str(batch),
        VISITS_WRITER_INSTANCE=f"bench-{run_id}",
        **extra,
    )
    started = time.time()
    writer = ServiceProcess("streamwatch-visits-writer", work / f"visits-writer-{run_id}.log", env)
    writer.start()
    rss = PeakRss(writer.pid)
    try:
        batches = wait_records(writer, "batch_written", total, timeout=600)
    finally:
        rss.stop()
        writer.stop(timeout=60)
    rate, _counted = steady_rate(batches)
    return rate, total / (stamp(batches[-1]) - started), rss


def run(run_: BenchRun, infra: Infra, work: Path, quick: bool) -> None:
    """Alternate listener off/on runs; report each side's best steady rate and the overhead."""
    total = 20_000 if quick else 200_000
    batch = 5_000 if quick else 50_000
    topic = infra.visits_topic(total)
    rounds = 1 if quick else 2
    best: dict[bool, float] = {False: 0.0, True: 0.0}
    for n in range(rounds):
        for listener in (False, True):
            label = "on" if listener else "off"
            rate, overall, rss = _run_writer(
                infra, work, topic, total=total, batch=batch, listener=listener, run_id=f"{label}-{n}"
            )
            best[listener] = max(best[listener], rate)
            case = f"listener {label}, round {n + 1}"
            run_.add(
                NAME, case, "rows/s into Delta", rate, "rows/s", note=f"steady, {batch:,} records/trigger"
            )
            run_.add(NAME, case, "rows/s incl. start", overall, "rows/s", note="process start → last batch")
            run_.memory.append(
                PeakMemory(
                    NAME, f"{batch:,} records/trigger, listener {label}", rss.peak_mib, rss.peak_processes
                )
            )
    overhead = 100.0 * (1 - best[True] / best[False]) if best[False] else 0.0
    run_.add(NAME, "listener on vs off", "overhead", overhead, "%", note="best steady rate of each side")
