"""SIGTERM in the middle of a backlog: the checkpoint ends exactly where the tables end.

Every batch written to Delta before the stop is committed in the checkpoint (``commits/N``), so the
restart replays nothing: the Delta transaction check would hide a replay from the tables, not from the
checkpoint's lag or from the ``replayed`` flag of ``batch_written``.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from visits_writer.stack import WriterPaths, run_generator, start_writer, wait_rows, writer_env, written

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.spark import CONNECTORS, newest_committed

pytestmark = pytest.mark.spark

TOTAL = 2000  # 10 batches of 200: SIGTERM lands mid-backlog


def _coordinates(paths: WriterPaths) -> list[tuple[int, int]]:
    visits, dead = written(paths)
    return [(r["partition"], r["offset"]) for r in visits + dead]


@pytest.mark.parametrize("connector", CONNECTORS)
def test_sigterm_mid_backlog_commits_every_written_batch_and_the_restart_replays_none(
    kafka: KafkaBroker, output_dir: Path, connector: str
) -> None:
    topic = kafka.create_topic(partitions=2)
    paths = WriterPaths(output_dir)
    run_generator(kafka, topic, output_dir / "generator.log", total=TOTAL, seed=11)
    env = writer_env(kafka, topic, paths, connector)
    # delta-spark's first append loads and compiles much more than delta-rs's (see test_stream.py).
    slow = 300 if connector == "jvm" else 120

    writer = start_writer(output_dir / "writer-1.log", env)
    writer.wait_for_event("batch_written", timeout=slow)
    writer.signal(signal.SIGTERM)
    assert writer.wait(60) == 0, writer.tail()
    assert [e["batch_committed"] for e in writer.events("query_stopped")] == [True]
    committed = newest_committed(paths.checkpoint, topic)
    rows = _coordinates(paths)
    assert 0 < len(rows) < TOTAL, "stopped mid-backlog"
    assert sorted(rows) == sorted((p, o) for p, end in committed.items() for o in range(end)), (
        "the checkpoint commits exactly the rows in the tables"
    )

    again = start_writer(output_dir / "writer-2.log", env)
    try:
        wait_rows(paths, TOTAL, slow)
        rows = _coordinates(paths)
        assert len(rows) == len(set(rows)) == TOTAL
        replayed = [b["batch_id"] for b in again.events("batch_written") if b["replayed"]]
        assert replayed == [], "batches written before the stop were replayed"
    finally:
        again.signal(signal.SIGTERM)
        assert again.wait(60) == 0, again.tail()
