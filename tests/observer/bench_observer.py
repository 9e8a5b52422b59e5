"""Benchmark of one observer replica (not a test): ``uv run python tests/observer/bench_observer.py``.

Starts a real broker and search server, fills a one-partition topic with generator-shaped visits, then
runs the observer once with profiling off (quality only) and once with profiling on, and prints records/s,
window and profile durations and peak RSS. Results depend on machine load: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# ruff: isort: skip_file
from harness.kafka import KafkaBroker
from harness.search import SearchServer
from harness.services import ServiceProcess, metric_value, service_env
from observer.bench_quality import visit


def fill(kafka: KafkaBroker, topic: str, count: int) -> None:
    import random

    rng = random.Random(3)
    producer = kafka.producer(**{"batch.num.messages": 10000, "linger.ms": 20})
    for i in range(count):
        value = visit(i, rng) if i % 100 else b"{broken"
        while True:
            try:
                producer.produce(topic, value=value, partition=0)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0


def run(
    kafka: KafkaBroker, search: SearchServer, topic: str, count: int, *, profile: bool, out: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    env = service_env(
        **kafka.env(),
        ELASTICSEARCH_URL=search.url,
        OBSERVER_TOPIC=topic,
        OBSERVER_SOURCE_TOPIC=topic,
        OBSERVER_GROUP_ID=f"bench-{suffix}",
        OBSERVER_INDEX=f"bench-{suffix}",
        OBSERVER_CHECKPOINT_PATH=str(out / "no-checkpoint"),
        OBSERVER_PROFILE_DIR=str(out / "profiles"),
        OBSERVER_PROFILE_ENABLED=str(profile).lower(),
        OBSERVER_WINDOW_RECORDS="10000",
        OBSERVER_WINDOW_SECONDS="5",
        OBSERVER_LAG_INTERVAL_SECONDS="5",
    )
    process = ServiceProcess("streamwatch-observer", out / f"observer-{suffix}.log", env)
    process.start_ready(path="/readyz")
    cpu_before = sum(psutil.Process(process.pid).cpu_times()[:2])
    cpu_used = 0.0
    peak = peak_workers = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_workers
        proc = psutil.Process(process.pid)
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            workers = 0
            for child in proc.children(recursive=True):
                try:
                    workers += child.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            peak_workers = max(peak_workers, workers)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            written = process.events("window_written")
            if sum(e["records"] for e in written) >= count:
                break
            time.sleep(0.5)
        if profile:
            while time.monotonic() < deadline and not process.events("profile_written"):
                time.sleep(0.5)
            time.sleep(5)  # let the profiler finish the merged backlog it is on
        text = process.metrics()
        # Consume loop only: the profile worker's CPU (children) is not part of it.
        cpu_used = sum(psutil.Process(process.pid).cpu_times()[:2]) - cpu_before
    finally:
        done.set()
        process.stop()
    assigned = process.events("partitions_assigned")[0]["ts"]
    written = process.events("window_written")
    first, last = datetime.fromisoformat(assigned), datetime.fromisoformat(written[-1]["ts"])
    seconds = (last - first).total_seconds()
    measures = sorted(e["measure_seconds"] for e in written)
    profiles = process.events("profile_written")
    label = "quality + profile" if profile else "quality only"
    print(
        f"[{label}] {count} records in {seconds:.2f}s = {count / seconds:,.0f} records/s;"
        f" windows {len(written)}, measure median {measures[len(measures) // 2] * 1000:.1f} ms,"
        f" max {measures[-1] * 1000:.1f} ms; peak RSS {peak / 2**20:.0f} MiB"
        f" (profile worker {peak_workers / 2**20:.0f} MiB);"
        f" CPU {cpu_used:.1f}s = {count / cpu_used:,.0f} records per CPU-second"
    )
    if profiles:
        builds = [p["build_seconds"] for p in profiles]
        merged = metric_value(text, "observer_profile_windows_merged_total")
        print(
            f"    profiles {len(profiles)}, build seconds {builds}, windows merged {merged},"
            f" rows {[p['rows'] for p in profiles]}, html bytes {[p['html_bytes'] for p in profiles]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="observer-bench-"))
    kafka = KafkaBroker.start(out)
    search = SearchServer.start(out)
    try:
        topic = kafka.create_topic(partitions=1)
        started = time.monotonic()
        fill(kafka, topic, args.records)
        print(f"filled {args.records} records in {time.monotonic() - started:.1f}s; load {os.getloadavg()}")
        run(kafka, search, topic, args.records, profile=False, out=out)
        run(kafka, search, topic, args.records, profile=True, out=out)
        print(f"load average after: {os.getloadavg()}; logs in {out}")
    finally:
        search.stop()
        kafka.stop()


if __name__ == "__main__":
    main()
