"""Passthrough throughput at several batch sizes against a raw confluent-kafka consume → produce loop.

Both copy the same pre-loaded topic on the same broker in the same run, with the same producer settings
(idempotent, ``acks=all``, the services' linger), so their ratio is what the Spark job costs over the
practical limit of one Python process moving records.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from bench.report import BenchRun, PeakMemory
from bench.stack import PRODUCER_PROPERTIES, Infra, PeakRss, stamp, steady_rate, wait_records
from harness.services import ServiceProcess, service_env

logger = logging.getLogger(__name__)

NAME = "passthrough"


def raw_copy(bootstrap: str, source: str, target: str, total: int, partitions: int) -> float:
    """Copy ``total`` records partition for partition with a bare consumer and producer; records/s."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-raw-loop",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", **PRODUCER_PROPERTIES}
    )
    consumer.assign([TopicPartition(source, p, 0) for p in range(partitions)])
    copied = 0
    started = time.perf_counter()
    deadline = time.monotonic() + 600
    try:
        while copied < total and time.monotonic() < deadline:
            for msg in consumer.consume(10000, timeout=1.0):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"raw loop consume: {error}")
                while True:
                    try:
                        producer.produce(
                            target, key=msg.key(), value=msg.value(), partition=msg.partition() or 0
                        )
                        break
                    except BufferError:
                        producer.poll(0.05)
                copied += 1
            producer.poll(0)
        if producer.flush(120):
            raise RuntimeError("raw loop: records left unacknowledged")
        elapsed = time.perf_counter() - started
    finally:
        consumer.close()
    if copied < total:
        raise RuntimeError(f"raw loop copied {copied} of {total} records")
    return total / elapsed


def _run_job(
    infra: Infra, work: Path, source: str, total: int, batch: int
) -> tuple[float, float, int, PeakRss]:
    """One passthrough process copying the whole topic with ``batch`` records per trigger.

    Returns (steady records/s, records/s including start, batches after the first, memory sampler).
    """
    target = infra.kafka.create_topic(f"bench-processed-{batch}-{int(time.time())}", 2)
    env = service_env(
        **infra.kafka_env(),
        PASSTHROUGH_SOURCE_TOPIC=source,
        PASSTHROUGH_TARGET_TOPIC=target,
        PASSTHROUGH_CHECKPOINT_PATH=str(work / f"checkpoint-{batch}"),
        PASSTHROUGH_MAX_RECORDS_PER_TRIGGER=str(batch),
        PASSTHROUGH_TRIGGER_INTERVAL_SECONDS="0",
        PASSTHROUGH_SPARK_MASTER="local[2]",
        PASSTHROUGH_STARTING_OFFSETS="earliest",
    )
    started = time.time()
    job = ServiceProcess("streamwatch-passthrough", work / f"passthrough-{batch}.log", env)
    job.start()
    rss = PeakRss(job.pid)
    try:
        batches = wait_records(job, "batch_copied", total, timeout=600)
    finally:
        rss.stop()
        job.stop(timeout=60)
        infra.drop_topic(target)
    rate, counted = steady_rate(batches)
    overall = total / (stamp(batches[-1]) - started)
    return rate, overall, counted, rss


def run(run_: BenchRun, infra: Infra, work: Path, quick: bool) -> None:
    """Raw loop first, then one passthrough per batch size; ratios against the raw loop."""
    total = 20_000 if quick else 400_000
    sizes = [5_000, 10_000] if quick else [10_000, 50_000, 100_000]
    source = infra.visits_topic(total)
    raw_target = infra.kafka.create_topic(f"bench-raw-{int(time.time())}", 2)
    raw = raw_copy(infra.kafka.bootstrap, source, raw_target, total, 2)
    infra.drop_topic(raw_target)
    run_.add(
        NAME, "raw confluent-kafka loop", "throughput", raw, "records/s", note=f"{total:,} records, 1 process"
    )
    for size in sizes:
        rate, overall, batches, rss = _run_job(infra, work, source, total, size)
        case = f"batch {size:,}"
        run_.add(
            NAME, case, "throughput", rate, "records/s", note=f"steady, {batches} batches after the first"
        )
        run_.add(NAME, case, "ratio to raw loop", rate / raw, "x")
        run_.add(
            NAME, case, "throughput incl. start", overall, "records/s", note="process start → last batch"
        )
        run_.memory.append(PeakMemory(NAME, f"{case} records/trigger", rss.peak_mib, rss.peak_processes))
        logger.info("passthrough_measured", extra={"batch": size, "records_per_s": rate, "raw": raw})
