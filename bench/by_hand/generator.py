"""Benchmark of the generator against the local broker (not a test; run by hand, bounded and small).

    uv run python -m bench.by_hand.generator

Measures delivered records per second at rate 0 with the default producer settings (batched) and with
single-record batches, the service's peak RSS, and the cost of building one record.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench.machine import load_average
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.services import ServiceProcess, service_env
from streamwatch_generator.records import VisitFactory, encode

RECORDS = 50_000


def run(kafka: KafkaBroker, tmp: Path, label: str, producer_properties: str | None) -> None:
    topic = kafka.create_topic(partitions=3)
    env = {**kafka.env(), "GENERATOR_TOPIC": topic, "GENERATOR_RATE": "0", "GENERATOR_TOTAL": str(RECORDS)}
    if producer_properties is not None:
        env["KAFKA_PRODUCER_PROPERTIES"] = producer_properties
    process = ServiceProcess("streamwatch-generator", tmp / f"{label}.log", service_env(**env))
    started = time.perf_counter()
    process.start()
    service = psutil.Process(process.pid)
    peak_rss = 0
    while process.running:
        try:
            peak_rss = max(peak_rss, service.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    wall = time.perf_counter() - started
    assert process.wait(5) == 0, process.tail()
    (summary,) = process.events("generator_summary")
    assert summary["delivered"] == RECORDS
    print(
        f"{label}: {RECORDS} records delivered, {summary['records_per_second']:.0f} records/s while producing"
        f" ({summary['elapsed_seconds']:.2f} s), {wall:.2f} s including start-up,"
        f" peak RSS {peak_rss / 2**20:.0f} MiB"
    )


def main() -> None:
    print(f"load average before: {load_average()}")
    factory = VisitFactory(random.Random(1))
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    for _ in range(20_000):
        encode(factory.visit(factory.visit_id(), moment))
    per_record = (time.perf_counter() - started) / 20_000
    print(
        f"build + encode one record: {per_record * 1e6:.1f} us ({1 / per_record:.0f} records/s on one core)"
    )
    with tempfile.TemporaryDirectory(prefix="generator-bench-") as name:
        tmp = Path(name)
        kafka = KafkaBroker.start(tmp)
        try:
            run(kafka, tmp, "default producer (batched)", None)
            run(kafka, tmp, "single-record batches", json.dumps({"batch.num.messages": 1}))
        finally:
            kafka.stop()
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
