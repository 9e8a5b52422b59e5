"""Visits writer rows/s into Delta with the SLA listener off and on (the listener's overhead), and
delta-rs (the ``python`` connector) against delta-spark (``jvm``: Spark's Kafka source, ``format("delta")``).

The listener-off run is the default path (``python`` connector, local mode: the read tasks spill the records
as Arrow files, :mod:`streamwatch_visits_writer.spill_source`) at 25,000 records/trigger: rows/s, rows per
CPU-second and peak PSS are its headline numbers.

Two pairs of runs (off then on, on then off) read the same pre-loaded topic into fresh tables; the
listener runs push every micro-batch's metrics to a real Pushgateway, and the listener's overhead is taken
over both pairs. CPU seconds per row are reported beside wall time: on a shared machine
they are the steadier measure of the listener's cost.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.report import BenchRun
from bench.stack import Infra, PeakRss, Steady, add_cpu_by_role, run_until_records, stamp, steady
from streamwatch_dev.services import service_env
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
    extra = {"VISITS_WRITER_PUSHGATEWAY_URL": infra.pushgateway.url} if listener else {}
    if connector == "jvm":
        extra["VISITS_WRITER_SPARK_JARS_DIR"] = str(spark_jars_dir())
    env = writer_env(
        infra,
        topic,
        work / f"writer-{run_id}",
        batch=batch,
        instance=f"bench-{run_id}",
        VISITS_WRITER_CONNECTOR=connector,
        **extra,
    )
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


def run(run_: BenchRun, infra: Infra, work: Path, quick: bool) -> None:
    """Alternate listener off/on runs; report each run and the listener's overhead per row."""
    # Twelve batches: with four, the rounds' CPU per row spread more than the listener costs.
    total = 20_000 if quick else 300_000
    batch = 5_000 if quick else 25_000
    topic = infra.visits_topic(total)
    # Two off/on pairs, the second in reverse order: with one pair the listener-on run always came
    # second, and a pair's second run tended to be the cheaper one, which hid the listener's cost.
    pairs = 2
    # Per side: steady records, steady seconds, CPU seconds (summed over the pairs).
    sums: dict[bool, list[float]] = {False: [0.0, 0.0, 0.0], True: [0.0, 0.0, 0.0]}
    for n in range(pairs):
        for listener in (False, True) if n % 2 == 0 else (True, False):
            label = "on" if listener else "off"
            part, overall, rss = _run_writer(
                infra, work, topic, total=total, batch=batch, listener=listener, run_id=f"{label}-{n}"
            )
            cpu = rss.cpu_between(part.start, part.end)
            for i, amount in enumerate((part.records, part.end - part.start, cpu)):
                sums[listener][i] += amount
            case = f"listener {label}, round {n + 1}"
            note = f"steady, {batch:,} records/trigger"
            run_.add(NAME, case, "rows/s into Delta", part.rate, "rows/s", note=note)
            run_.add(NAME, case, "rows per CPU-second", part.records / max(1e-6, cpu), "rows/s")
            run_.add(NAME, case, "rows/s incl. start", overall, "rows/s", note="process start → last batch")
            if not listener:
                add_cpu_by_role(run_, NAME, case, rss, part)
            run_.memory.append(rss.memory(NAME, f"{batch:,} records/trigger, listener {label}"))
    (off_rows, off_s, off_cpu), (on_rows, on_s, on_cpu) = sums[False], sums[True]
    wall = 100.0 * ((on_s / on_rows) / (off_s / off_rows) - 1)
    cpu_overhead = 100.0 * ((on_cpu / on_rows) / (off_cpu / off_rows) - 1)
    run_.add(NAME, "listener on vs off", "wall time per row", wall, "%", note="+ = slower with listener")
    run_.add(
        NAME, "listener on vs off", "CPU time per row", cpu_overhead, "%", note="+ = costlier with listener"
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
    run_.add(NAME, case, "ratio to delta-rs", part.rate / (off_rows / off_s), "x", note="rows/s, steady")
    run_.memory.append(rss.memory(NAME, f"{batch:,} records/trigger, delta-spark (jvm)"))
