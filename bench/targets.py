"""The performance issue's targets, judged from one bench run's (median) measurements.

Each target names the case it reads; a case the run did not measure (``--only``, ``--quick``) is
"not measured", never a pass. Goals stated against "today" are held against the baseline below, measured
with this bench's own cases so the comparison is like for like.
"""

from __future__ import annotations

from bench.report import BenchRun, PeakMemory, Target

GIB_MIB = 1024.0
BIG_BATCH = 100_000

# The jvm passthrough's records per CPU-second as a share of the raw loop's, at 100k-record batches,
# before its per-batch persist() + count() went (main at 5503173, three rounds on a quiet machine, median):
# the CPU ratio is the load-independent form of "records per CPU-second of today".
JVM_CPU_RATIO_BEFORE = 0.118
JVM_GAIN = 1.5


def _batch_of(case: str) -> int:
    """``"python batch 100,000"`` → 100000; 0 for a case without a batch size."""
    last = case.rsplit(maxsplit=1)[-1].replace(",", "")
    return int(last) if last.isdigit() else 0


def _connector_of(case: str) -> str:
    return case.split(maxsplit=1)[0]


def better_passthrough(run: BenchRun) -> str | None:
    """The passthrough path with the highest ratio to the raw loop at 100k-record batches."""
    at_big = [
        m
        for m in run.measurements
        if m.benchmark == "passthrough" and m.metric == "ratio to raw loop" and _batch_of(m.case) >= BIG_BATCH
    ]
    if not at_big:
        return None
    return _connector_of(max(at_big, key=lambda m: m.value).case)


def _passthrough_value(run: BenchRun, connector: str | None, metric: str) -> float | None:
    if connector is None:
        return None
    return run.value("passthrough", f"{connector} batch {BIG_BATCH:,}", metric)


def _peak_pss(memory: list[PeakMemory]) -> float | None:
    return max(p.peak_pss_mib for p in memory) if memory else None


def _jvm_gain(run: BenchRun) -> float | None:
    ratio = _passthrough_value(run, "jvm", "CPU ratio to raw loop")
    if ratio is None or JVM_CPU_RATIO_BEFORE <= 0:
        return None
    return ratio / JVM_CPU_RATIO_BEFORE


def targets(run: BenchRun) -> list[Target]:
    """The targets, filled in from what this run measured."""
    better = better_passthrough(run)
    path = f"path: {better}" if better else "no 100k-record batches in this run"
    passthrough_memory = [
        p for p in run.memory if p.service == "passthrough" and better and p.load.split()[0] == better
    ]
    writer_memory = [
        p for p in run.memory if p.service == "visits-writer" and p.load.endswith("listener off")
    ]
    observer_100k = [p for p in run.memory if p.service == "observer" and "profile 100k" in p.load]
    return [
        Target(
            "passthrough at 100k records/trigger, better path: wall time vs the raw loop",
            0.8,
            ">=",
            "x",
            _passthrough_value(run, better, "ratio to raw loop"),
            path,
        ),
        Target(
            "passthrough at 100k records/trigger, better path: records per CPU-second vs the raw loop",
            0.4,
            ">=",
            "x",
            _passthrough_value(run, better, "CPU ratio to raw loop"),
            path,
        ),
        Target(
            "passthrough at 100k records/trigger, better path: peak memory (PSS summed)",
            GIB_MIB,
            "<=",
            "MiB",
            _peak_pss(passthrough_memory),
            path,
        ),
        Target(
            "jvm passthrough: records per CPU-second vs before (both as a share of the raw loop's)",
            JVM_GAIN,
            ">=",
            "x",
            _jvm_gain(run),
            f"before: {JVM_CPU_RATIO_BEFORE:.3f}x the raw loop",
        ),
        Target(
            "observer, quality + lag + drift, one replica",
            250_000,
            ">=",
            "records/s",
            run.value("observer", "quality + lag + drift", "records/s per replica"),
        ),
        Target(
            "observer with 100k-row profiles: peak memory (PSS summed: observer + profile worker)",
            600.0,
            "<=",
            "MiB",
            _peak_pss(observer_100k),
        ),
        Target(
            "SLA listener on vs off: CPU per row",
            5.0,
            "<=",
            "%",
            run.value("visits-writer", "listener on vs off", "CPU time per row"),
        ),
        Target(
            "visits writer, default path, 25k records/trigger: rows per CPU-second",
            52_000,
            ">=",
            "rows/s",
            run.value("visits-writer", "listener off", "rows per CPU-second"),
        ),
        Target(
            "visits writer, default path, 25k records/trigger: peak memory (PSS summed)",
            1.2 * GIB_MIB,
            "<=",
            "MiB",
            _peak_pss(writer_memory),
        ),
        Target(
            "100k-row profile build",
            6.0,
            "<=",
            "s",
            run.value("observer", "quality + lag + profile 100k", "profile build (slowest)"),
        ),
        Target(
            "SLA detection latency over the theoretical minimum",
            2.0,
            "<=",
            "s",
            run.value("sla-detection", "above theoretical minimum", "excess"),
        ),
    ]
