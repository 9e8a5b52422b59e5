"""Visits writer rows/s into Delta with the SLA listener off and on (the listener's overhead), and
delta-rs (the ``python`` connector) against delta-spark (``jvm``: Spark's Kafka source, ``format("delta")``).

The listener-off run is the default path (``python`` connector, local mode: the read tasks spill the records
as Arrow files, :mod:`streamwatch_visits_writer.spill_source`) at 25,000 records/trigger, run alone: rows/s,
rows per CPU-second and peak PSS are its headline numbers.

The listener's overhead comes from writers run side by side: one with the listener off and one with it on
(pushing every micro-batch's metrics to a real Pushgateway) read the same pre-loaded topic into fresh tables
at the same time, and each one's CPU per row is taken over the time both ran. Run one after the other, the
same case moved by about ±10 % from run to run as the machine's speed changed, more than the listener
costs; side by side, both see the same machine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.report import BenchRun
from bench.stack import (
    Infra,
    PeakRss,
    Steady,
    add_cpu_by_role,
    run_until_records,
    side_by_side,
    stamp,
    start_sampled,
    steady,
    wait_records,
)
from streamwatch_dev.services import ServiceProcess, service_env
from streamwatch_dev.spark import spark_jars_dir

NAME = "visits-writer"


def writer_env(
    infra: Infra, topic: str, root: Path, *, batch: int, instance: str, **settings: str
) -> dict[str, str]:
    """A bench run's visits writer environment: ``topic`` into fresh tables under ``root``, local Spark,
    no trigger interval, ``batch`` records a trigger, the Pushgateway group ``instance``; ``settings``
    adds other ``VISITS_WRITER_*`` values."""
    return service_env(
        **infra.kafka.env(),
        VISITS_WRITER_SOURCE_TOPIC=topic,
        VISITS_WRITER_VISITS_TABLE_PATH=str(root / "visits"),
        VISITS_WRITER_DEAD_LETTER_TABLE_PATH=str(root / "dead_letters"),
        VISITS_WRITER_CHECKPOINT_PATH=str(root / "checkpoint"),
        VISITS_WRITER_SPARK_MASTER="local[2]",
        VISITS_WRITER_TRIGGER_INTERVAL_SECONDS="0",
        VISITS_WRITER_MAX_RECORDS_PER_TRIGGER=str(batch),
        VISITS_WRITER_INSTANCE=instance,
        **settings,
    )


def _run_env(
    infra: Infra, work: Path, topic: str, *, batch: int, listener: bool, run_id: str, connector: str
) -> dict[str, str]:
    extra = {"VISITS_WRITER_PUSHGATEWAY_URL": infra.pushgateway.url} if listener else {}
    if connector == "jvm":
        extra["VISITS_WRITER_SPARK_JARS_DIR"] = str(spark_jars_dir())
    return writer_env(
        infra,
        topic,
        work / f"writer-{run_id}",
        batch=batch,
        instance=f"bench-{run_id}",
        VISITS_WRITER_CONNECTOR=connector,
        **extra,
    )


def _run_writer(
    infra: Infra,
    work: Path,
    topic: str,
    *,
    total: int,
    batch: int,
    listener: bool,
    run_id: str,
    connector: str = "python",
) -> tuple[Steady, float, PeakRss]:
    env = _run_env(infra, work, topic, batch=batch, listener=listener, run_id=run_id, connector=connector)
    started = time.time()
    batches, rss = run_until_records(
        "streamwatch-visits-writer",
        work / f"visits-writer-{run_id}.log",
        env,
        event="batch_written",
        total=total,
        timeout=600,
    )
    return steady(batches), total / (stamp(batches[-1]) - started), rss


def _run_side_by_side(
    infra: Infra, work: Path, topic: str, *, total: int, batch: int, pair: int
) -> dict[bool, tuple[Steady, float]]:
    """A listener-off and a listener-on writer at once; per side, the batches that ended while both ran
    and the CPU seconds they took."""
    order = (False, True) if pair % 2 == 0 else (True, False)  # neither always starts first
    running: dict[bool, tuple[ServiceProcess, PeakRss]] = {}
    batches: dict[bool, list[dict[str, Any]]] = {}
    try:
        for listener in order:
            run_id = f"{'on' if listener else 'off'}-side-{pair}"
            env = _run_env(
                infra, work, topic, batch=batch, listener=listener, run_id=run_id, connector="python"
            )
            running[listener] = start_sampled(
                "streamwatch-visits-writer", work / f"visits-writer-{run_id}.log", env
            )
        for listener, (process, _rss) in running.items():
            batches[listener] = wait_records(process, "batch_written", total, timeout=900)
    finally:
        for process, rss in running.values():
            rss.stop()
            process.stop(timeout=60)
    parts = side_by_side(batches)
    return {side: (part, running[side][1].cpu_between(part.start, part.end)) for side, part in parts.items()}


def run(run_: BenchRun, infra: Infra, work: Path, quick: bool) -> None:
    """The default path alone (headline), the listener's overhead side by side, then delta-spark."""
    # Twelve batches: with four, the rounds' CPU per row spread more than the listener costs.
    total = 20_000 if quick else 300_000
    batch = 5_000 if quick else 25_000
    topic = infra.visits_topic(total)
    note = f"steady, {batch:,} records/trigger"

    part, overall, rss = _run_writer(
        infra, work, topic, total=total, batch=batch, listener=False, run_id="off"
    )
    cpu = rss.cpu_between(part.start, part.end)
    case = "listener off"
    run_.add(NAME, case, "rows/s into Delta", part.rate, "rows/s", note=note)
    run_.add(NAME, case, "rows per CPU-second", part.records / max(1e-6, cpu), "rows/s")
    run_.add(NAME, case, "rows/s incl. start", overall, "rows/s", note="process start → last batch")
    add_cpu_by_role(run_, NAME, case, rss, part)
    run_.memory.append(rss.memory(NAME, f"{batch:,} records/trigger, listener off"))
    headline = part.rate

    # Two side-by-side pairs, each started in the other order; the overhead is taken over both.
    # Per side: records, seconds, CPU seconds, all within the time both writers of a pair ran.
    sums: dict[bool, list[float]] = {False: [0.0, 0.0, 0.0], True: [0.0, 0.0, 0.0]}
    for pair in range(2):
        for listener, (part, cpu) in _run_side_by_side(
            infra, work, topic, total=total, batch=batch, pair=pair
        ).items():
            for i, amount in enumerate((part.records, part.end - part.start, cpu)):
                sums[listener][i] += amount
            case = f"side by side {pair + 1}, listener {'on' if listener else 'off'}"
            run_.add(NAME, case, "rows per CPU-second", part.records / max(1e-6, cpu), "rows/s", note=note)
    (off_rows, off_s, off_cpu), (on_rows, on_s, on_cpu) = sums[False], sums[True]
    wall = 100.0 * ((on_s / on_rows) / (off_s / off_rows) - 1)
    cpu_overhead = 100.0 * ((on_cpu / on_rows) / (off_cpu / off_rows) - 1)
    side = "side by side, over the time both ran"
    slower = f"+ = slower with listener; {side}"
    run_.add(NAME, "listener on vs off", "wall time per row", wall, "%", note=slower)
    run_.add(
        NAME,
        "listener on vs off",
        "CPU time per row",
        cpu_overhead,
        "%",
        note=f"+ = costlier with listener; {side}",
    )
    # delta-spark against delta-rs, both with the listener off: the same topic, fresh tables.
    part, overall, rss = _run_writer(
        infra, work, topic, total=total, batch=batch, listener=False, run_id="jvm", connector="jvm"
    )
    cpu = rss.cpu_between(part.start, part.end)
    case = "delta-spark (jvm connector), listener off"
    run_.add(NAME, case, "rows/s into Delta", part.rate, "rows/s", note=f"steady, {batch:,} records/trigger")
    run_.add(NAME, case, "rows per CPU-second", part.records / max(1e-6, cpu), "rows/s")
    run_.add(NAME, case, "rows/s incl. start", overall, "rows/s", note="process start → last batch")
    alone = "rows/s, steady, delta-rs alone"
    run_.add(NAME, case, "ratio to delta-rs", part.rate / headline, "x", note=alone)
    run_.memory.append(rss.memory(NAME, f"{batch:,} records/trigger, delta-spark (jvm)"))
