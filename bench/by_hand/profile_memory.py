"""Peak memory of the observer's profile path, main process and profile worker apart (not a test).

    uv run --frozen python -m bench.by_hand.profile_memory [--records 100000] [--before DIR]

An observer-shaped process (the child, started here) measures two windows of ``--records`` generator
visits each (two partitions, as the observer bench's 100k case) with the real ``QualityMeter`` and hands
their rows to the real ``Profiler``, which builds both reports in its worker process. This process reads
``/proc/<pid>/smaps_rollup`` of the child and of its descendants every 0.1 s and prints the peak PSS of
each and of their sum (shared pages split among their users, so the sum is the real footprint).

``--before DIR``: also run the same child against the observer sources in ``DIR`` (e.g. an extracted
``git archive`` of an older commit: ``DIR/services/observer/src``), whose requests held pandas frames;
both runs in the same invocation, one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_MIB = 2**20


def pss_bytes(pid: int) -> int:
    """PSS of one process (0 once it has exited)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


class Peaks:
    """Peak PSS of the main process, of its worker processes (summed) and of all of them."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.main = self.workers = self.total = 0
        self.timeline: list[tuple[int, int]] = []  # (main, workers) PSS in MiB, one sample a second
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            main = pss_bytes(self.pid)
            workers = sum(pss_bytes(p) for p in descendants(self.pid))
            self.main = max(self.main, main)
            self.workers = max(self.workers, workers)
            self.total = max(self.total, main + workers)
            if len(self.timeline) < time.monotonic() - self._started:
                self.timeline.append((main // _MIB, workers // _MIB))
            self._stop.wait(0.1)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {
            k: round(v / _MIB)
            for k, v in (("main", self.main), ("worker", self.workers), ("sum", self.total))
        }


def observe(records: int, out: Path, pandas_rows: bool) -> None:
    """The child: two windows of ``records`` visits measured and profiled as the observer does."""
    from datetime import UTC, datetime

    from bench.stack import visit_values
    from streamwatch_observer.delivery import DirectoryDestination
    from streamwatch_observer.profiler import Profiler
    from streamwatch_observer.quality import QualityMeter
    from streamwatch_observer.report import ProfileRequest, trim_heap

    profiler = Profiler(DirectoryDestination(out), max_rows=records).start()
    meter = QualityMeter(["event_time", "user_id", "page"], "visit_id", keep_rows=True)
    values = visit_values(2 * records)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    built = time.perf_counter()
    for partition in (0, 1):
        window = values[partition::2]
        rows = meter.measure(window).rows
        assert rows is not None
        del window
        trim_heap()
        # The older observer converted the rows to pandas before handing them over (measure.py).
        handed = rows.to_pandas() if pandas_rows else rows
        del rows
        profiler.submit(ProfileRequest("bench", {partition: (0, records - 1)}, moment, moment, handed))
        del handed
    del values
    trim_heap()
    while not profiler.idle():
        time.sleep(0.2)
    seconds = time.perf_counter() - built
    profiler.close(timeout=60)
    imported = sorted(m for m in ("pandas", "ydata_profiling") if m in sys.modules)
    print(json.dumps({"seconds": round(seconds, 1), "main_imports": imported}))


def run(records: int, source: Path | None) -> dict[str, object]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(source / "services/observer/src"), env.get("PYTHONPATH", "")]
        )
    with tempfile.TemporaryDirectory() as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.by_hand.profile_memory", "--child", out, "--records", str(records)]
            + (["--pandas-rows"] if source is not None else []),
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        peaks = Peaks(child.pid)
        stdout, _ = child.communicate(timeout=900)
        result: dict[str, object] = dict(peaks.stop())
        if os.environ.get("PROFILE_MEMORY_TIMELINE"):
            print("timeline (main, worker) MiB per second:", peaks.timeline)
        if child.returncode != 0:
            raise RuntimeError(f"child failed ({child.returncode})")
        result.update(json.loads(stdout.strip().splitlines()[-1]))
        result["reports"] = len(list(Path(out).glob("*.html")))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--before", type=Path, help="root of the older sources to compare with")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pandas-rows", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        observe(args.records, args.child, args.pandas_rows)
        return
    print(f"two windows of {args.records:,} records, peak PSS in MiB")
    if args.before is not None:
        print("before:", run(args.records, args.before))
    print("now:   ", run(args.records, None))


if __name__ == "__main__":
    main()
