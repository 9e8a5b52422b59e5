"""By-hand A/B of the SLA listener's cost in the visits writer: CPU per row with the listener on against off.

Runs the real service (``streamwatch-visits-writer``, python connector, ``local[2]``, no trigger interval)
against one pre-loaded topic on a real broker and a real Pushgateway, listener off and on in the same
process, ``--repeats`` times (the order alternates: off/on, on/off, ...), and reports per repeat the CPU
seconds per 1,000 rows of the steady part (after the first, warm-up batch) and the listener's overhead, then
the median and the spread over the repeats. The CPU time is split by process: the Python driver (where the
listener's callbacks and the pushing thread run), the JVM, and the Python workers.

A ``--variant NAME:SRC`` adds a listener-on case whose ``streamwatch_common`` comes from ``SRC`` (a copy
of an older ``services/common/src``, put first on ``PYTHONPATH``): before and after in one run::

    cp -r services/common/src /tmp/common-base/                     # before changing the code
    uv run --frozen python -m bench.by_hand.listener_cost --repeats 3 --variant base:/tmp/common-base/src

``--pythonpath`` pins the sources of every case (e.g. ``git archive`` of a commit, unpacked), so that edits
made to the checkout while the cases run change none of them.

Reuses the measuring helpers of ``bench/`` (read-only). Not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.stack import Infra, steady, wait_records
from bench.visits_writer import writer_env
from streamwatch_dev.services import ServiceProcess

PARTS = ("driver", "jvm", "workers")
_TICKS = os.sysconf("SC_CLK_TCK")


class CpuByPart:
    """Samples the cumulative CPU seconds of a process tree, split into the root (the Python driver),
    the JVM and everything else (Python workers), every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        # The last per-thread snapshot (whole run so far): where a difference between cases lies.
        self.threads: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-by-part", daemon=True)
        self._thread.start()

    def _sample(self) -> dict[str, float] | None:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        cpu = dict.fromkeys(PARTS, 0.0)
        for proc in tree:
            try:
                times = proc.cpu_times()
                name = proc.name()
            except psutil.Error:
                continue
            part = "driver" if proc.pid == self.pid else "jvm" if name == "java" else "workers"
            # children_*: exited workers reaped by this process. The driver's own children are the JVM
            # and its workers, counted as themselves while alive: leave the driver's children out.
            own = times.user + times.system
            reaped = 0.0 if part == "driver" else times.children_user + times.children_system
            cpu[part] += own
            cpu["workers"] += reaped
        return cpu

    def _threads(self) -> dict[str, float]:
        """Cumulative CPU seconds of the tree's live threads, by part and thread name (digits dropped:
        ``jvm spark-listener-group-streams``, ``driver python``), read from ``/proc``."""
        found: dict[str, float] = {}
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return found
        for proc in tree:
            try:
                name = proc.name()
                tasks = list(Path(f"/proc/{proc.pid}/task").iterdir())
            except (psutil.Error, OSError):
                continue
            part = "driver" if proc.pid == self.pid else "jvm" if name == "java" else "workers"
            for task in tasks:
                try:
                    comm = (task / "comm").read_text().strip()
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                # utime and stime: fields 14 and 15 of stat, 12 and 13 after the command.
                seconds = (int(fields[11]) + int(fields[12])) / _TICKS
                key = f"{part} {comm.rstrip('0123456789-#').strip() or comm}"
                found[key] = found.get(key, 0.0) + seconds
        return found

    def _run(self) -> None:
        beat = 0
        while not self._stop.is_set():
            cpu = self._sample()
            if cpu is not None:
                self.samples.append((time.time(), cpu))
            if beat % 5 == 0:
                threads = self._threads()
                if threads:
                    self.threads = threads
            beat += 1
            self._stop.wait(self.interval)

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per part between two Unix times (from the samples nearest to them)."""
        first = min(self.samples, key=lambda s: abs(s[0] - start))[1]
        last = min(self.samples, key=lambda s: abs(s[0] - end))[1]
        return {part: max(0.0, last[part] - first[part]) for part in PARTS}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class Case:
    """One run's steady part."""

    name: str
    repeat: int
    rows: int
    batches: int
    seconds: float
    cpu: dict[str, float]
    pushes: int
    threads: dict[str, float]

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu.values())

    def per_krow(self, value: float) -> float:
        return 1000.0 * value / self.rows


def run_case(
    infra: Infra, work: Path, topic: str, *, name: str, repeat: int, listener: bool, src: str | None,
    pythonpath: str, total: int, batch: int,
) -> Case:  # fmt: skip
    """Run the writer until ``total`` records are written; its steady part's rows, time and CPU."""
    root = work / f"{name}-{repeat}"
    extra: dict[str, str] = {}
    if listener:
        extra["VISITS_WRITER_PUSHGATEWAY_URL"] = infra.pushgateway.url
    path = [p for p in (src, pythonpath, os.environ.get("PYTHONPATH", "")) if p]
    if path:
        extra["PYTHONPATH"] = os.pathsep.join(path)
    env = writer_env(infra, topic, root, batch=batch, instance=f"listener-cost-{name}-{repeat}", **extra)
    process = ServiceProcess("streamwatch-visits-writer", work / f"{name}-{repeat}.log", env)
    process.start()
    sampler = CpuByPart(process.pid)
    try:
        batches = wait_records(process, "batch_written", total, timeout=900)
        time.sleep(0.5)  # a sample after the last batch's end
    finally:
        sampler.stop()
        process.stop(timeout=60)
    part = steady(batches)
    pushes = 0
    if listener:
        pushes = sum(1 for r in process.log_records() if r.get("event") == "batch_progress")
    return Case(
        name, repeat, part.records, part.batches, part.end - part.start,
        sampler.between(part.start, part.end), pushes, sampler.threads,
    )  # fmt: skip


def _thread_table(results: list[Case], names: list[str], total: int, top: int = 15) -> None:
    """CPU seconds per 1,000 rows of the whole run (start-up included) per thread name, the median over
    the repeats, the names whose difference between the cases is largest first."""
    keys = {key for c in results for key in c.threads}
    per: dict[str, dict[str, float]] = {}
    for name in names:
        runs = [c for c in results if c.name == name]
        # The whole run wrote the topic once: per 1,000 records of it.
        per[name] = {
            key: statistics.median(
                1000.0 * c.threads.get(key, 0.0) / (c.rows + c.rows / c.batches) for c in runs
            )
            for key in keys
        }
    spread = {key: max(per[n][key] for n in names) - min(per[n][key] for n in names) for key in keys}
    print("\nCPU-s per 1,000 rows by thread (whole run, median of the repeats), largest difference first\n")
    print("| thread | " + " | ".join(names) + " |")
    print("| --- | " + " | ".join("---:" for _ in names) + " |")
    for key in sorted(keys, key=lambda k: -spread[k])[:top]:
        print(f"| {key} | " + " | ".join(f"{per[n][key]:.4f}" for n in names) + " |")


def _pct(on: float, off: float) -> float:
    return 100.0 * (on / off - 1.0)


def main() -> None:
    """Load the topic once, run off/on (and the variants) ``--repeats`` times, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=25_000)
    parser.add_argument("--variant", action="append", default=[], help="NAME:SRC, listener on")
    parser.add_argument("--no-off", action="store_true", help="skip the listener-off case")
    parser.add_argument(
        "--pythonpath", default="", help="put first on PYTHONPATH for every case (pinned sources)"
    )
    args = parser.parse_args()
    stamp_ = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = Path("test-output") / f"bench-listener-cost-{stamp_}"
    work.mkdir(parents=True, exist_ok=True)
    infra = Infra(work)
    cases: list[tuple[str, bool, str | None]] = [("on", True, None)]
    cases += [(v.split(":", 1)[0], True, v.split(":", 1)[1]) for v in args.variant]
    if not args.no_off:
        cases.insert(0, ("off", False, None))
    results: list[Case] = []
    load = [os.getloadavg()[0]]
    try:
        topic = infra.visits_topic(args.records)
        for repeat in range(args.repeats):
            order = cases if repeat % 2 == 0 else list(reversed(cases))
            for name, listener, src in order:
                case = run_case(
                    infra, work, topic, name=name, repeat=repeat, listener=listener, src=src,
                    pythonpath=args.pythonpath, total=args.records, batch=args.batch,
                )  # fmt: skip
                results.append(case)
                line = {**asdict(case), "load": os.getloadavg()[0]}
                line.pop("threads")
                print(json.dumps(line), flush=True)
    finally:
        infra.stop()
    load.append(os.getloadavg()[0])
    names = [name for name, _, _ in cases]
    print(f"\n{args.batch:,} records/trigger, {args.records:,} records, load {load[0]:.1f} → {load[1]:.1f}")
    print("CPU seconds per 1,000 steady rows (driver / jvm / workers); against `off` in the same repeat\n")
    columns = "batches | rows/s | CPU-s/krow | driver | jvm | workers | CPU vs off | wall vs off"
    print(f"| repeat | case | {columns} |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    overhead: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        by_name = {c.name: c for c in results if c.repeat == repeat}
        off = by_name.get("off")
        for name in names:
            c = by_name[name]
            vs_cpu = vs_wall = ""
            if off is not None and name != "off":
                cpu = _pct(c.cpu_total / c.rows, off.cpu_total / off.rows)
                wall = _pct(c.seconds / c.rows, off.seconds / off.rows)
                overhead[name].append(cpu)
                vs_cpu, vs_wall = f"{cpu:+.1f} %", f"{wall:+.1f} %"
            print(
                f"| {repeat + 1} | {name} | {c.batches} | {c.rows / c.seconds:,.0f} | "
                f"{c.per_krow(c.cpu_total):.3f} | "
                + " | ".join(f"{c.per_krow(c.cpu[p]):.3f}" for p in PARTS)
                + f" | {vs_cpu} | {vs_wall} |"
            )
    print()
    for name, values in overhead.items():
        if values:
            print(
                f"{name} vs off, CPU per row: median {statistics.median(values):+.1f} %, "
                f"range {min(values):+.1f} … {max(values):+.1f} % over {len(values)} repeats"
            )
    _thread_table(results, names, args.records)
    summary: list[dict[str, Any]] = [asdict(c) for c in results]
    (work / "results.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
