"""Two Spark jobs watched at once by one observer: the real passthrough (checkpoint in a directory) and a
plain PySpark query nobody here wrote (Spark's own Kafka source to the console sink, checkpoint on the
real S3 server, tests/observer/plain_spark_job.py), both reading the same topic. Each has its own lag,
status and evaluation under its ``spark_job`` label and its own lag documents; killing the plain job is
``stop`` for that job only; a third job whose bucket does not exist is ``checkpoint_unreadable`` with the
reason logged while the other two are served."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, get_args

import pytest
from observer.conftest import (
    ObserverFactory,
    assert_exact_cover,
    coverage,
    source_lags,
    start_passthrough,
    visit,
)

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import ManagedProcess, wait_until
from streamwatch_dev.s3 import S3Server
from streamwatch_dev.services import ServiceProcess, metric_value
from streamwatch_dev.spark import s3a_jars_dir, spark_jars_dir
from streamwatch_observer.lag import LagStatus
from streamwatch_observer.lag_evaluation import EVALUATIONS

pytestmark = pytest.mark.spark

PLAIN, ABSENT = "plain-console", "lost-bucket"
PLAIN_JOB = Path(__file__).with_name("plain_spark_job.py")
WINDOW = "6"  # the lag evaluation window: at least twice the plain job's 1-second trigger
# Every value observer_lag_evaluation and observer_lag_status take.
STATES = (*EVALUATIONS, *get_args(LagStatus))


def start_plain_job(
    kafka: KafkaBroker, topic: str, checkpoint: str, s3: S3Server, *, log_path: Path, processes: list[Any]
) -> ManagedProcess:
    """The plain job, wired as spark-submit would wire it: jars and S3A's endpoint as Spark options, the
    credentials in the environment (S3A's default chain)."""
    jars = sorted(str(p) for d in (spark_jars_dir(), s3a_jars_dir()) for p in d.glob("*.jar"))
    conf = {
        "spark.master": "local[1]",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "1",
        "spark.hadoop.fs.s3a.endpoint": s3.endpoint,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.endpoint.region": s3.env()["S3_REGION"],
    }
    submit = ["--jars", ",".join(jars), *[a for k, v in conf.items() for a in ("--conf", f"{k}={v}")]]
    env = {**os.environ, **s3.env(), "PYSPARK_SUBMIT_ARGS": " ".join([*submit, "pyspark-shell"])}
    job = ManagedProcess(
        "plain-spark-job", [sys.executable, str(PLAIN_JOB), kafka.bootstrap, topic, checkpoint], log_path, env
    )
    processes.append(job)
    return job.start()


def state_of(observer: ServiceProcess, job: str, topic: str, metric: str) -> dict[int, str | None]:
    """The status (observer_lag_status) or evaluation (observer_lag_evaluation) set to 1, per partition."""
    text = observer.metrics()
    states: dict[int, str | None] = {}
    for p in (0, 1):
        labels = {"spark_job": job, "topic": topic, "partition": str(p)}
        states[p] = next(
            (s for s in STATES if metric_value(text, metric, status=s, **labels) == 1),
            None,
        )
    return states


def test_the_passthrough_and_a_plain_spark_job_on_s3_each_with_their_own_lag_status_and_stop(
    kafka: KafkaBroker, s3: S3Server, observers: ObserverFactory, output_dir: Path, processes: list[Any]
) -> None:
    source = observers.source
    observers.topics(partitions=2)
    observers.produce_visits(source, {0: range(40), 1: range(100, 125)})
    bucket = s3.create_bucket(f"plain-{uuid.uuid4().hex[:8]}")
    start_passthrough(kafka, observers, output_dir / "passthrough.log", processes)
    plain = start_plain_job(
        kafka, source, f"s3a://{bucket}/plain", s3, log_path=output_dir / "plain-job.log", processes=processes
    )
    watched = [
        {"name": PLAIN, "checkpoint": f"s3://{bucket}/plain", "source_topic": source},
        {"name": ABSENT, "checkpoint": f"s3://absent-{uuid.uuid4().hex[:8]}/job", "source_topic": source},
    ]
    observer = observers.start(
        OBSERVER_WATCHED_JOBS=json.dumps(watched),
        OBSERVER_PROFILE_ENABLED="false",
        OBSERVER_WINDOW_SECONDS="2",
        OBSERVER_LAG_EVALUATION_WINDOW_SECONDS=WINDOW,
        **s3.env(),
    )

    # Both jobs caught up, each read from its own checkpoint: the passthrough's directory, the bucket.
    def caught_up(job: str) -> bool:
        return source_lags(observers, observer, spark_job=job) == {0: 0, 1: 0}

    for job in ("passthrough", PLAIN):
        wait_until(functools.partial(caught_up, job), 180, what=f"{job} at lag 0")
        assert state_of(observer, job, source, "observer_lag_status") == {0: "ok", 1: "ok"}
    # The plain job's checkpoint is only in the bucket; the observer read it there.
    assert s3.filesystem().get_file_info(f"{bucket}/plain/commits").type.name == "Directory"
    # The job whose bucket does not exist: its own status, the reason logged, the others served.
    assert state_of(observer, ABSENT, source, "observer_lag_status") == {
        0: "checkpoint_unreadable",
        1: "checkpoint_unreadable",
    }
    unreadable = [e for e in observer.events("checkpoint_unreadable") if e.get("spark_job") == ABSENT]
    assert unreadable and "does not exist" in unreadable[0]["error"], unreadable[:1]
    assert not [e for e in observer.events("checkpoint_unreadable") if e.get("spark_job") != ABSENT]

    # Lag documents apart by job, each with its own status.
    def latest(job: str) -> dict[int, dict[str, Any]]:
        docs = sorted((d for d in observers.docs("lag") if d["job"] == job), key=lambda d: d["@timestamp"])
        return {d["partition"]: d for d in docs}

    wait_until(lambda: {p: d["lag_offsets"] for p, d in latest(PLAIN).items()} == {0: 0, 1: 0}, 60,
               what="the plain job's lag documents at lag 0")  # fmt: skip
    assert {d["status"] for d in latest(ABSENT).values()} == {"checkpoint_unreadable"}
    assert {d["topic"] for d in latest(PLAIN).values()} == {source}

    # Kill the plain job while records keep arriving: stop for it, and the passthrough keeps up.
    plain.kill()
    deadline, n = time.monotonic() + 90, 0
    while state_of(observer, PLAIN, source, "observer_lag_evaluation") != {0: "stop", 1: "stop"}:
        assert time.monotonic() < deadline, state_of(observer, PLAIN, source, "observer_lag_evaluation")
        for partition in (0, 1):
            kafka.produce(source, [(None, visit(50000 + n))], partition=partition)
            n += 1
        time.sleep(0.5)
    evaluation = state_of(observer, "passthrough", source, "observer_lag_evaluation")
    assert set(evaluation.values()) <= {"ok", "warn"}, evaluation
    behind = source_lags(observers, observer, spark_job=PLAIN)
    assert all(lag is not None and lag > 0 for lag in behind.values()), behind
    wait_until(
        lambda: source_lags(observers, observer, spark_job="passthrough") == {0: 0, 1: 0},
        60,
        what="passthrough lag 0",
    )
    # The observed job's copy is still observed completely: windows cover every offset once.
    ends = kafka.end_offsets(observers.topic)
    assert ends == kafka.end_offsets(source)

    def covered() -> bool:
        cover = coverage(observers.docs("window"))
        return all(cover.get(p) and cover[p][-1][1] == end - 1 for p, end in ends.items())

    wait_until(covered, 60, what="windows up to the copy's end")
    for partition, ranges in coverage(observers.docs("window")).items():
        assert_exact_cover(ranges, ends[partition])
