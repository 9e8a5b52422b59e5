"""The passthrough as a real process: real broker, real local Spark, real Pushgateway."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Pushgateway
from streamwatch_dev.services import VENV_BIN, ServiceProcess, metric_value, service_env
from streamwatch_dev.spark import newest_committed, spark_jars_dir
from streamwatch_observer.checkpoint import read_committed
from streamwatch_passthrough.settings import PassthroughSettings

pytestmark = pytest.mark.spark

Record = tuple[bytes | None, bytes]
# Every way the job copies: the Python source's read tasks copy (the python connector's default), the
# records become Spark rows for the confluent-kafka writer, or for Spark's own Kafka sink.
PATHS = [
    pytest.param("python", "source_tasks", id="python-source_tasks"),
    pytest.param("python", "spark_rows", id="python-spark_rows"),
    pytest.param("jvm", "spark_rows", id="jvm"),
]
# Records that arrive while the resumed job is killed: far more than it copies before the kill.
KILL_BURST = 20_000
# Not judged, copied as it is: a value that is not JSON, not UTF-8, and 1,000,000 bytes long.
LARGE_VALUE = (b"\xff\x00{" + bytes(range(256)) * 3907)[:1_000_000]


def _records(partition: int, start: int, count: int) -> list[Record]:
    return [
        (f"user-{partition}-{i}".encode(), json.dumps({"i": i, "p": partition}).encode() + b"\xff")
        for i in range(start, start + count)
    ]


def _env(
    kafka: KafkaBroker,
    source: str,
    target: str,
    checkpoint: Path,
    connector: str = "python",
    *,
    copy_path: str = "source_tasks",
    **extra: str,
) -> dict[str, str]:
    jvm = {"PASSTHROUGH_SPARK_JARS_DIR": str(spark_jars_dir())} if connector == "jvm" else {}
    return service_env(
        **kafka.env(),
        **jvm,
        PASSTHROUGH_CONNECTOR=connector,
        PASSTHROUGH_COPY_PATH=copy_path,
        PASSTHROUGH_SOURCE_TOPIC=source,
        PASSTHROUGH_TARGET_TOPIC=target,
        PASSTHROUGH_CHECKPOINT_PATH=str(checkpoint),
        PASSTHROUGH_SPARK_MASTER="local[2]",
        PASSTHROUGH_TRIGGER_INTERVAL_SECONDS="0.5",
        **extra,
    )


def _produce(kafka: KafkaBroker, topic: str, records: list[Record], partition: int) -> None:
    # A broker takes records up to 1 MiB; librdkafka's own default stops at 1,000,000 bytes.
    producer = kafka.producer(**{"message.max.bytes": 2_000_000})
    for key, value in records:
        producer.produce(topic, key=key, value=value, partition=partition)
        producer.poll(0)
    assert producer.flush(30) == 0


def _copied(kafka: KafkaBroker, topic: str) -> int:
    return sum(kafka.end_offsets(topic).values())


def _maps(pid: int, archive: Path) -> bool:
    """Whether a process of ``pid``'s tree (the job and its Spark driver JVM) has ``archive`` mapped: a JVM
    unmaps a class archive that does not match it."""
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            if any(m.path == str(archive) for m in process.memory_maps()):
                return True
        except psutil.NoSuchProcess:
            continue  # a Python worker that finished since the listing
    return False


def _sigkill_mid_stream_then_restart(
    kafka: KafkaBroker,
    job: ServiceProcess,
    env: dict[str, str],
    topics: tuple[str, str],
    *,
    copied_before: dict[int, list[Record]],
    output_dir: Path,
) -> None:
    """SIGKILL ``job`` (copying ``topics``, source then target, with ``copied_before`` already copied
    exactly) while a burst of records arrives; a restart with larger triggers copies the rest. Every
    record is then in the target at least once and in order, and only the batch the kill cut short twice."""
    source, target = topics
    checkpoint = Path(env["PASSTHROUGH_CHECKPOINT_PATH"])
    burst = {p: _records(p, len(copied_before[p]), KILL_BURST // 2) for p in (0, 1)}
    for p, records in burst.items():
        kafka.produce(source, records, partition=p)
    batches = len(job.events("batch_copied"))
    job.wait_for_event("batch_copied", timeout=120, count=batches + 2)
    job.kill()
    expected = {p: copied_before[p] + burst[p] for p in (0, 1)}
    ends = {p: len(records) for p, records in expected.items()}
    assert sum(newest_committed(checkpoint, source).values()) < sum(ends.values()), "killed mid-stream"

    larger = {**env, "PASSTHROUGH_MAX_RECORDS_PER_TRIGGER": "2000"}
    again = ServiceProcess("streamwatch-passthrough", output_dir / "passthrough-3.log", larger)
    started = time.monotonic()
    again.start_ready(timeout=120, path="/readyz")
    try:
        wait_until(lambda: newest_committed(checkpoint, source) == ends, 180, what="caught up after the kill")
        elapsed = time.monotonic() - started
        # All of it (no expected count: with multi-record batches the broker's watermark runs short).
        copied = kafka.records_by_partition(target)
        for p in (0, 1):
            # At-least-once: a batch cut short is written again; without the repeats it is the source.
            assert list(dict.fromkeys(copied[p])) == expected[p]
        repeated = sum(len(copied[p]) for p in (0, 1)) - sum(ends.values())
        cut_short = int(env["PASSTHROUGH_MAX_RECORDS_PER_TRIGGER"])
        assert 0 <= repeated <= cut_short, "at most the one batch cut short by the kill is written again"
        copied_batches = again.events("batch_copied")
        resumed = sum(b["records"] for b in copied_batches)
        # Steady state: without the first (worker start) batch.
        after_start = copied_batches[1:]
        steady = sum(b["records"] for b in after_start) / sum(b["seconds"] for b in after_start)
        print(f"passthrough restart: {resumed} records in {elapsed:.1f}s incl. start; steady {steady:.0f}/s")
    finally:
        again.signal(signal.SIGTERM)
        assert again.wait(60) == 0


@pytest.mark.parametrize(("connector", "copy_path"), PATHS)
def test_copies_byte_for_byte_across_a_sigterm_and_the_python_paths_at_least_once_across_a_sigkill(
    kafka: KafkaBroker, pushgateway: Pushgateway, output_dir: Path, connector: str, copy_path: str
) -> None:
    """SIGTERM mid-stream, then a restart that resumes without gaps or repeats: byte for byte, offset for
    offset. The python connector's paths copy with the project's own code, so their resumed job then takes
    a SIGKILL in the middle of a burst (the jvm path's Kafka sink is Spark's own)."""
    source, target = kafka.create_topic(partitions=2), kafka.create_topic(partitions=2)
    produced = {0: _records(0, 0, 300), 1: _records(1, 0, 120)}
    produced[0][7] = (b"large", LARGE_VALUE)
    for p, records in produced.items():
        _produce(kafka, source, records, p)
    checkpoint = output_dir / "checkpoint"
    env = _env(
        kafka,
        source,
        target,
        checkpoint,
        connector,
        copy_path=copy_path,
        PASSTHROUGH_MAX_RECORDS_PER_TRIGGER="100",
        PASSTHROUGH_PUSHGATEWAY_URL=pushgateway.url,
        PASSTHROUGH_INSTANCE="passthrough-test",
    )

    started = time.monotonic()
    job = ServiceProcess("streamwatch-passthrough", output_dir / "passthrough-1.log", env)
    job.start_ready(timeout=120, path="/readyz")
    ready_s = time.monotonic() - started
    wait_until(lambda: _copied(kafka, target) > 0, 120, what="first copied record")
    first_record_s = time.monotonic() - started
    print(f"passthrough: ready after {ready_s:.1f}s, first record copied after {first_record_s:.1f}s")
    job.wait_for_event("batch_copied", timeout=120, count=2)
    # The session's class archive (tests/conftest.py) is in use, whatever the connector's jars.
    archive = Path(env["PASSTHROUGH_SPARK_CLASS_ARCHIVE"])
    assert _maps(job.pid, archive), f"the driver does not map {archive}"
    pushed = {"job": "passthrough", "instance": "passthrough-test"}
    duration = "streaming_batch_duration_seconds"
    wait_until(
        lambda: metric_value(pushgateway.metrics_text(), duration, **pushed) is not None,
        30,
        what="batch metrics pushed with job=passthrough",
    )
    # The seed's name belongs to the visits writer alone.
    assert metric_value(pushgateway.metrics_text(), "visits_sync_duration", **pushed) is None
    assert metric_value(job.metrics(), "passthrough_batch_failures_total") == 0

    # SIGTERM mid-stream (5 batches of at most 100 to go): the running batch finishes, no later one writes.
    job.signal(signal.SIGTERM)
    assert job.wait(60) == 0
    assert job.events("query_stopped")
    stopped_at = newest_committed(checkpoint, source)
    first_run = sum(b["records"] for b in job.events("batch_copied"))
    assert sum(stopped_at.values()) == first_run < 420, "stopped mid-stream; every copied batch committed"

    more = {0: _records(0, 300, 50), 1: _records(1, 120, 80)}
    for p, records in more.items():
        kafka.produce(source, records, partition=p)
    again = ServiceProcess("streamwatch-passthrough", output_dir / "passthrough-2.log", env)
    again.start_ready(timeout=120, path="/readyz")
    killed_next = connector == "python"
    try:
        final = {0: 350, 1: 200}
        wait_until(
            lambda: newest_committed(checkpoint, source) == final, 180, what="all 550 records committed"
        )
        # The observer's lag reader reads this checkpoint, whichever Kafka source wrote it.
        assert read_committed(checkpoint, source).offsets == kafka.end_offsets(source) == {0: 350, 1: 200}
        expected = {p: produced[p] + more[p] for p in (0, 1)}
        copied = kafka.records_by_partition(target)
        assert copied == expected, "byte for byte, partition for partition, in order"
        assert metric_value(again.metrics(), "passthrough_records_total") == 550 - first_run, "no re-read"
        batches = job.events("batch_copied") + again.events("batch_copied")
        assert all(0 < b["records"] <= 100 for b in batches), "max records per trigger"
        if killed_next:
            _sigkill_mid_stream_then_restart(
                kafka, again, env, (source, target), copied_before=expected, output_dir=output_dir
            )
    finally:
        if killed_next:
            again.kill()  # already gone, unless a check failed before the kill phase's SIGKILL
        else:
            again.signal(signal.SIGTERM)
            assert again.wait(60) == 0


def test_bad_setting_exits_2_naming_the_variable(kafka: KafkaBroker) -> None:
    env = service_env(**kafka.env(), PASSTHROUGH_TRIGGER_INTERVAL_SECONDS="-1")
    command = [str(VENV_BIN / "streamwatch-passthrough")]
    done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    assert b"PASSTHROUGH_TRIGGER_INTERVAL_SECONDS" in done.stderr


def test_jvm_connector_without_jars_exits_2_naming_the_jar_variable(
    kafka: KafkaBroker, tmp_path: Path
) -> None:
    env = service_env(**kafka.env(), PASSTHROUGH_CONNECTOR="jvm", PASSTHROUGH_SPARK_JARS_DIR=str(tmp_path))
    command = [str(VENV_BIN / "streamwatch-passthrough")]
    done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert b"PASSTHROUGH_SPARK_JARS_DIR" in done.stderr and b"no *.jar in" in done.stderr


@pytest.mark.parametrize(
    ("checkpoint", "jars", "expected"),
    [
        ("s3a://ckpt/passthrough", None, (b"PASSTHROUGH_S3A_JARS_DIR", b"needs hadoop-aws's jars (not set")),
        ("s3://ckpt/passthrough", "empty", (b"PASSTHROUGH_S3A_JARS_DIR", b"no *.jar in")),
        ("gs://ckpt/passthrough", None, (b"PASSTHROUGH_CHECKPOINT_PATH", b"unknown scheme 'gs'")),
    ],
)
def test_a_checkpoint_location_that_cannot_work_exits_2_naming_the_variable(
    kafka: KafkaBroker, tmp_path: Path, checkpoint: str, jars: str | None, expected: tuple[bytes, bytes]
) -> None:
    variable, reason = expected
    extra = {"PASSTHROUGH_S3A_JARS_DIR": str(tmp_path)} if jars else {}
    env = service_env(**kafka.env(), PASSTHROUGH_CHECKPOINT_PATH=checkpoint, **extra)
    command = [str(VENV_BIN / "streamwatch-passthrough")]
    done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert variable in done.stderr and reason in done.stderr, done.stderr


def test_an_object_store_checkpoint_gives_spark_hadoop_aws_and_s3a_but_never_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hadoop-aws-3.5.0.jar").touch()
    (tmp_path / "jvm").mkdir()
    (tmp_path / "jvm" / "spark-sql-kafka.jar").touch()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "PASSTHROUGH_CONNECTOR": "jvm",
        "PASSTHROUGH_SPARK_JARS_DIR": str(tmp_path / "jvm"),
        "PASSTHROUGH_CHECKPOINT_PATH": "s3a://ckpt/passthrough",
        "PASSTHROUGH_S3A_JARS_DIR": str(tmp_path),
        "S3_ENDPOINT_URL": "http://seaweedfs:8333",
        "AWS_ACCESS_KEY_ID": "key-id",
        "AWS_SECRET_ACCESS_KEY": "the-secret",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    conf = PassthroughSettings().spark_session_conf()  # from the environment
    assert conf["spark.jars"].split(",") == [
        str(tmp_path / "jvm" / "spark-sql-kafka.jar"),
        str(tmp_path / "hadoop-aws-3.5.0.jar"),
    ]
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://seaweedfs:8333"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert not [k for k, v in conf.items() if "the-secret" in v or "key-id" in v], (
        "credentials stay in the environment"
    )
    monkeypatch.setenv("PASSTHROUGH_CHECKPOINT_PATH", "/checkpoint")
    local = PassthroughSettings()
    assert not [k for k in local.spark_session_conf() if "s3a" in k]


def test_source_tasks_copy_on_the_jvm_connector_exits_2_naming_the_variable(kafka: KafkaBroker) -> None:
    env = service_env(**kafka.env(), PASSTHROUGH_CONNECTOR="jvm", PASSTHROUGH_COPY_PATH="source_tasks")
    command = [str(VENV_BIN / "streamwatch-passthrough")]
    done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    assert b"PASSTHROUGH_COPY_PATH" in done.stderr and b"python connector" in done.stderr
