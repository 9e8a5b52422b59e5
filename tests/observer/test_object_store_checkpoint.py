"""The passthrough's checkpoint on S3-compatible object storage, through the real SeaweedFS S3 gateway: the
same committed position as the same files on disk, and the real passthrough checkpointing there (hadoop-aws)
while the real observer reads its lag there, sharing no directory. A wrong secret, a missing bucket or no
server at all is the status ``checkpoint_unreadable`` with the reason logged (never the secret), and the
observer goes on observing."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from observer.conftest import ObserverFactory, coverage, source_lags, start_passthrough, write_checkpoint
from observer.units import unit_settings
from pydantic import ValidationError

from streamwatch_common.errors import CheckpointError
from streamwatch_common.object_store import CheckpointStore, ObjectStoreSettings
from streamwatch_common.settings import settings_error_line
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import free_port, wait_until
from streamwatch_dev.s3 import S3Server
from streamwatch_dev.services import metric_value
from streamwatch_dev.spark import s3a_jars_dir
from streamwatch_observer.checkpoint import read_committed
from streamwatch_observer.settings import ObserverSettings

NO_PROFILE = {"OBSERVER_PROFILE_ENABLED": "false"}


def settings(env: dict[str, str]) -> ObjectStoreSettings:
    return ObjectStoreSettings(**env)  # type: ignore[arg-type]  # by the variables' names


def lag_status(text: str, topic: str, partition: int, status: str) -> float | None:
    return metric_value(text, "observer_lag_status", topic=topic, partition=str(partition), status=status)


def test_a_checkpoint_on_s3_reads_as_the_same_files_on_disk(s3: S3Server, tmp_path: Path) -> None:
    local = tmp_path / "checkpoint"
    write_checkpoint(local, 0, {0: 5, 1: 3}, "visits")
    write_checkpoint(local, 1, {0: 9, 1: 7}, "visits")
    write_checkpoint(local, 2, {0: 12, 1: 7}, "visits", commit=False)  # planned, not committed
    bucket = s3.create_bucket(f"ckpt-{uuid.uuid4().hex[:8]}")
    s3.upload(local, f"s3://{bucket}/passthrough")
    before = time.time()

    store = CheckpointStore.open(f"s3://{bucket}/passthrough", settings(s3.env()))
    remote, on_disk = read_committed(store, "visits"), read_committed(local, "visits")
    assert (remote.batch_id, remote.offsets) == (on_disk.batch_id, on_disk.offsets) == (1, {0: 9, 1: 7})
    assert remote.commit_time is not None and before - 60 < remote.commit_time <= time.time() + 1
    # A prefix nothing was written under yet: a job that has not started, not an error.
    empty = CheckpointStore.open(f"s3://{bucket}/not-yet", settings(s3.env()))
    assert read_committed(empty, "visits").offsets is None


@pytest.mark.parametrize("case", ["wrong secret", "missing bucket", "no server"])
def test_an_unreadable_object_store_is_an_error_with_its_reason_and_never_the_secret(
    s3: S3Server, case: str
) -> None:
    bucket = s3.create_bucket(f"ckpt-{uuid.uuid4().hex[:8]}")
    env, location = s3.env(), f"s3://{bucket}/passthrough"
    if case == "wrong secret":
        env = s3.env(secret_key="not-the-secret")
    elif case == "missing bucket":
        location = f"s3://absent-{uuid.uuid4().hex[:8]}/passthrough"
    else:
        env["S3_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(CheckpointError) as unreadable:
        read_committed(CheckpointStore.open(location, settings(env)), "visits")
    reason = str(unreadable.value)
    expected = {"wrong secret": "SIGNATURE_DOES_NOT_MATCH", "missing bucket": "does not exist"}.get(case, "")
    assert expected in reason and location.split("/")[2] in reason
    assert env["AWS_SECRET_ACCESS_KEY"] not in reason
    assert time.monotonic() - started < 15, "one bounded request, no retries"


@pytest.mark.parametrize(
    ("location", "reason"),
    [("hdfs://nn/ckpt", "unknown scheme 'hdfs'"), ("s3:///ckpt", "names no bucket")],
)
def test_a_checkpoint_location_that_cannot_work_is_refused_naming_the_variable(
    location: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        unit_settings(checkpoint_path=location)
    line = settings_error_line(ObserverSettings, caught.value)
    assert line.startswith("configuration error: OBSERVER_CHECKPOINT_PATH: ") and reason in line, line


@pytest.mark.spark
def test_the_passthrough_checkpoints_to_s3_and_the_observer_reads_its_lag_there_with_no_shared_directory(
    kafka: KafkaBroker, s3: S3Server, observers: ObserverFactory, output_dir: Path, processes: list[Any]
) -> None:
    observers.topics(partitions=2)
    observers.produce_visits(observers.source, {0: range(25), 1: range(100, 110)})
    bucket = s3.create_bucket(f"ckpt-{uuid.uuid4().hex[:8]}")
    passthrough = start_passthrough(
        kafka,
        observers,
        output_dir / "passthrough.log",
        processes,
        PASSTHROUGH_CHECKPOINT_PATH=f"s3a://{bucket}/passthrough",
        PASSTHROUGH_S3A_JARS_DIR=str(s3a_jars_dir()),
        **s3.env(),
    )
    # The observer has the bucket only: nothing of the passthrough's is on its disk.
    observer = observers.start(
        OBSERVER_CHECKPOINT_PATH=f"s3://{bucket}/passthrough", **s3.env(), **NO_PROFILE
    )

    wait_until(
        lambda: source_lags(observers, observer) == {0: 0, 1: 0},
        120,
        what="the passthrough caught up, read from S3",
    )
    assert sum(kafka.end_offsets(observers.topic).values()) == 35
    assert not observers.checkpoint.exists(), "the passthrough wrote a local checkpoint"
    passthrough.stop()
    observers.produce_visits(observers.source, {0: range(25, 31), 1: range(110, 112)})
    wait_until(
        lambda: source_lags(observers, observer) == {0: 6, 1: 2},
        60,
        what="the lag 6 and 2 behind the stopped passthrough",
    )
    assert lag_status(observer.metrics(), observers.source, 0, "ok") == 1
    log = passthrough.log_path.read_text() + observer.log_path.read_text()
    assert s3.secret_key not in log


def test_wrong_credentials_are_checkpoint_unreadable_and_the_observer_goes_on(
    kafka: KafkaBroker, s3: S3Server, observers: ObserverFactory
) -> None:
    observers.topics(partitions=1)
    bucket = s3.create_bucket(f"ckpt-{uuid.uuid4().hex[:8]}")
    wrong = "wrong-" + uuid.uuid4().hex
    observer = observers.start(
        OBSERVER_CHECKPOINT_PATH=f"s3://{bucket}/passthrough",
        OBSERVER_WINDOW_RECORDS="10",
        **s3.env(secret_key=wrong),
        **NO_PROFILE,
    )
    wait_until(
        lambda: lag_status(observer.metrics(), observers.source, 0, "checkpoint_unreadable") == 1,
        60,
        what="the status checkpoint_unreadable",
    )
    (first, *_) = observer.wait_for_event("checkpoint_unreadable")
    assert "SIGNATURE_DOES_NOT_MATCH" in first["error"] and first["retry_in_seconds"] > 0
    # Still observing: records of the observed topic become windows.
    observers.produce_visits(observers.topic, {0: range(20)})
    windows = [(0, 9), (10, 19)]
    wait_until(lambda: coverage(observers.docs("window")).get(0) == windows, 60, what="two windows of 10")
    assert observer.running
    log = observer.log_path.read_text()
    assert wrong not in log and s3.secret_key not in log
