"""Passthrough throughput at 100k records per trigger against a raw confluent-kafka consume → produce loop.

All copy the same pre-loaded topic on the same broker in the same run, with the same producer settings
(idempotent, ``acks=all``, the services' linger), so their ratio is what the Spark job costs over the
practical limit of one Python process moving records. The job runs every way it can copy (:data:`PATHS`):
``python-source_tasks`` (the default: the Python source's read tasks consume and produce their ranges
themselves), ``python-spark_rows`` (the Python source's records become Spark rows for the confluent-kafka
``foreachBatch`` writer) and ``jvm`` (Spark's own ``format("kafka")`` source and sink, jars from
``make deps``). Reported per path: the ratio to the raw loop's records/s and records per CPU-second, and
the peak PSS of the job's process tree.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from bench.report import BenchRun
from bench.stack import Infra, PeakRss, Steady, add_cpu_by_role, run_until_records, stamp, steady
from streamwatch_dev.services import service_env
from streamwatch_dev.spark import spark_jars_dir

logger = logging.getLogger(__name__)

NAME = "passthrough"
#: (connector, ``PASSTHROUGH_COPY_PATH``) of every way the job copies; None: the connector's default.
PATHS: tuple[tuple[str, str | None], ...] = (
    ("python", "source_tasks"),
    ("python", "spark_rows"),
    ("jvm", None),
)


def raw_copy(bootstrap: str, source: str, target: str, total: int, partitions: int) -> tuple[float, float]:
    """Copy ``total`` records partition for partition with a bare consumer and producer.

    Returns (records/s, records per CPU-second of this process)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-raw-loop",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    consumer.assign([TopicPartition(source, p, 0) for p in range(partitions)])
    copied = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
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
        cpu = time.process_time() - cpu_started
    finally:
        consumer.close()
    if copied < total:
        raise RuntimeError(f"raw loop copied {copied} of {total} records")
    return total / elapsed, total / max(1e-6, cpu)


def _run_job(
    infra: Infra, work: Path, source: str, total: int, batch: int, *, connector: str, copy_path: str | None
) -> tuple[Steady, float, PeakRss]:
    """One passthrough process copying ``total`` records with ``batch`` records per trigger.

    Returns (the steady part, records/s including the start, the memory and CPU sampler).
    """
    run_id = f"{connector}-{copy_path or 'default'}-{batch}"
    target = infra.kafka.create_topic(f"bench-processed-{run_id}-{int(time.time())}", 2)
    jvm = {"PASSTHROUGH_SPARK_JARS_DIR": str(spark_jars_dir())} if connector == "jvm" else {}
    path = {"PASSTHROUGH_COPY_PATH": copy_path} if copy_path else {}
    env = service_env(
        **infra.kafka.env(),
        **jvm,
        **path,
        PASSTHROUGH_CONNECTOR=connector,
        PASSTHROUGH_SOURCE_TOPIC=source,
        PASSTHROUGH_TARGET_TOPIC=target,
        PASSTHROUGH_CHECKPOINT_PATH=str(work / f"checkpoint-{run_id}"),
        PASSTHROUGH_MAX_RECORDS_PER_TRIGGER=str(batch),
        PASSTHROUGH_TRIGGER_INTERVAL_SECONDS="0",
        PASSTHROUGH_SPARK_MASTER="local[2]",
        PASSTHROUGH_STARTING_OFFSETS="earliest",
    )
    started = time.time()
    try:
        batches, rss = run_until_records(
            "streamwatch-passthrough",
            work / f"passthrough-{run_id}.log",
            env,
            event="batch_copied",
            total=total,
            timeout=600,
        )
    finally:
        infra.drop_topic(target)
    return steady(batches), total / (stamp(batches[-1]) - started), rss


def run(run_: BenchRun, infra: Infra, work: Path, quick: bool) -> None:
    """Raw loop first, then the passthrough on every path; ratios against the raw loop."""
    # Six batches: the JVM's JIT still compiles hot paths during the first few (JFR: seconds of C2 time
    # per batch), and the steady rate should not measure that warm-up.
    size = 10_000 if quick else 100_000
    total = 6 * size
    source = infra.visits_topic(total)
    raw_target = infra.kafka.create_topic(f"bench-raw-{int(time.time())}", 2)
    raw, raw_cpu = raw_copy(infra.kafka.bootstrap, source, raw_target, total, 2)
    infra.drop_topic(raw_target)
    case = "raw confluent-kafka loop"
    run_.add(NAME, case, "throughput", raw, "records/s", note=f"{total:,} records, 1 process")
    run_.add(NAME, case, "records per CPU-second", raw_cpu, "records/s")
    for connector, copy_path in PATHS:
        part, overall, rss = _run_job(
            infra, work, source, total, size, connector=connector, copy_path=copy_path
        )
        # One word before "batch": bench.targets reads the path from the case's first word.
        case = f"{connector}-{copy_path} batch {size:,}" if copy_path else f"{connector} batch {size:,}"
        note = f"steady: {part.batches} batches after the first"
        run_.add(NAME, case, "throughput", part.rate, "records/s", note=note)
        run_.add(NAME, case, "ratio to raw loop", part.rate / raw, "x")
        per_cpu = part.records / max(1e-6, rss.cpu_between(part.start, part.end))
        run_.add(NAME, case, "records per CPU-second", per_cpu, "records/s", note="JVM + Python, steady part")
        run_.add(NAME, case, "CPU ratio to raw loop", per_cpu / raw_cpu, "x", note="load-independent")
        add_cpu_by_role(run_, NAME, case, rss, part)
        run_.add(
            NAME, case, "throughput incl. start", overall, "records/s", note="process start → last batch"
        )
        memory = rss.memory(NAME, f"{case} records/trigger")
        run_.memory.append(memory)
        run_.add(NAME, case, "peak PSS", memory.peak_pss_mib, "MiB", note="process tree")
        logger.info(
            "passthrough_measured",
            extra={
                "connector": connector,
                "copy_path": copy_path,
                "batch": size,
                "records_per_s": part.rate,
                "raw": raw,
                "per_cpu_s": per_cpu,
                "raw_per_cpu_s": raw_cpu,
                "peak_pss_mib": memory.peak_pss_mib,
            },
        )
