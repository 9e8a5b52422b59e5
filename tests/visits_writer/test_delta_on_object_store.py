"""The visits writer's Delta tables and checkpoint on a real S3-compatible store (SeaweedFS).

Both connectors (delta-rs on the python path, delta-spark through hadoop-aws's S3A on the jvm path) write
each offset exactly once across a crash; delta-rs's commits there are conditional puts, so concurrent
appends never overwrite one another; a missing bucket or a refused credential is one line naming the
table, and the secret is never printed.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from visits_writer.stack import (
    WriterPaths,
    assert_each_offset_once,
    kill_tree,
    run_generator,
    run_writer,
    start_writer,
    wait_rows,
    writer_env,
    written,
)

from streamwatch_common.object_store import ObjectStoreSettings
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.s3 import S3Server
from streamwatch_dev.services import service_env
from streamwatch_dev.spark import CONNECTORS, s3a_jars_dir
from streamwatch_visits_writer.delta_sink import DeltaBatchSink
from streamwatch_visits_writer.tables import create_tables


def store_of(s3: S3Server, secret_key: str | None = None) -> ObjectStoreSettings:
    return ObjectStoreSettings.model_validate(s3.env(secret_key))


def lake(s3: S3Server) -> str:
    """A fresh bucket's prefix, as the chart's visitsWriter.storage.url names it."""
    return f"s3a://{s3.create_bucket(f'lake-{uuid.uuid4().hex[:8]}')}/streamwatch"


@pytest.mark.spark
@pytest.mark.parametrize("connector", CONNECTORS)
def test_both_connectors_write_each_offset_once_to_tables_and_checkpoint_on_the_store(
    kafka: KafkaBroker, s3: S3Server, output_dir: Path, connector: str
) -> None:
    root = lake(s3)
    paths = WriterPaths(root, storage_options=store_of(s3).storage_options(root))
    topic = kafka.create_topic(partitions=2)
    run_generator(kafka, topic, output_dir / "generator-1.log", total=600, seed=11)
    env = writer_env(
        kafka, topic, paths, connector, **s3.env(), VISITS_WRITER_S3A_JARS_DIR=str(s3a_jars_dir())
    )
    # delta-spark's first append loads and compiles much more than delta-rs's (see test_stream).
    slow = 300 if connector == "jvm" else 120
    writer = start_writer(output_dir / "writer-1.log", env)
    writer.wait_for_event("batch_written", timeout=slow)
    kill_tree(writer)
    at_crash = sum(map(len, written(paths)))
    assert 0 < at_crash < 600, at_crash

    run_generator(kafka, topic, output_dir / "generator-2.log", total=200, seed=12)
    writer = start_writer(output_dir / "writer-2.log", env)
    wait_rows(paths, 800, slow)
    time.sleep(2)  # a few more (empty) triggers must not add anything
    assert_each_offset_once(paths, kafka.end_offsets(topic))
    # Spark's own checkpoint is in the bucket too: nothing of the job's state is on local disk.
    files = s3.filesystem().get_file_info([f"{root.removeprefix('s3a://')}/checkpoint/commits/0"])
    assert files[0].size is not None and files[0].size > 0
    log = writer.log_path.read_text() + (output_dir / "writer-1.log").read_text()
    assert s3.secret_key not in log
    writer.stop()


def test_concurrent_appends_on_the_store_never_overwrite_a_commit(s3: S3Server) -> None:
    """Two writers appending to one table at once: each commit is a conditional put, so a writer that
    lost the race for a table version retries at the next one instead of replacing the winner's."""
    store = store_of(s3)
    root = lake(s3)
    create_tables(f"{root}/delta/visits", f"{root}/delta/visits_dead_letters", store)
    path = f"{root}/delta/visits_dead_letters"

    def append(app: str) -> list[bool]:
        sink = DeltaBatchSink(path, "visits_dead_letters", app, store.storage_options(path))
        schema = pa.schema(DeltaTable(path, storage_options=store.storage_options(path)).schema().to_arrow())
        empty = dict.fromkeys(schema.names)
        return [
            sink.append(pa.Table.from_pylist([empty | {"batch_id": b, "detail": app}], schema=schema), b)
            for b in range(8)
        ]

    with ThreadPoolExecutor(2) as pool:
        appended = list(pool.map(append, ["app-0", "app-1"], timeout=120))
    assert appended == [[True] * 8] * 2
    table = DeltaTable(path, storage_options=store.storage_options(path))
    rows = table.to_pyarrow_table(columns=["detail", "batch_id"]).to_pylist()
    assert sorted((r["detail"], r["batch_id"]) for r in rows) == [
        (f"app-{n}", b) for n in range(2) for b in range(8)
    ]
    assert table.version() == 16  # the creation, then one commit per append
    assert {app: table.transaction_version(app) for app in ("app-0", "app-1")} == {"app-0": 7, "app-1": 7}


@pytest.mark.parametrize("case", ["missing bucket", "wrong secret"])
def test_a_store_it_cannot_use_is_one_line_naming_the_table_and_exit_1(s3: S3Server, case: str) -> None:
    root = lake(s3) if case == "wrong secret" else f"s3a://absent-{uuid.uuid4().hex[:8]}/streamwatch"
    env = service_env(
        **s3.env("not-the-secret" if case == "wrong secret" else None),
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",  # required by the settings; never contacted by this command
        VISITS_WRITER_VISITS_TABLE_PATH=f"{root}/delta/visits",
        VISITS_WRITER_DEAD_LETTER_TABLE_PATH=f"{root}/delta/visits_dead_letters",
    )
    result = run_writer(env, "create-tables", timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"table visits at {root}/delta/visits cannot be reached" in line
    assert ("404" if case == "missing bucket" else "403") in line, line
    assert "Traceback" not in result.stdout + result.stderr
    assert s3.secret_key not in result.stdout + result.stderr
    events = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert [e["event"] for e in events if e.get("level") == "ERROR"] == ["table_unreachable"], events
