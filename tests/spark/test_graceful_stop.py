"""Stopping a streaming query between micro-batches: a batch that wrote is always committed.

The Spark test runs real queries on Spark's ``rate`` source: stopping with ``query.stop()`` right after the
``foreachBatch`` function returned (the old mechanism) left ``commits/N`` missing in most of these stops,
with ``commits/.N.<uuid>.tmp`` behind, because the interrupt cut Spark's commit-log write short.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from streamwatch_common.spark.graceful_stop import (
    BatchGate,
    ShutdownInProgress,
    _committed,
    stop_gracefully,
)


def _progress(batch_id: int, executed: bool) -> Any:
    durations = {"triggerExecution": 5, "latestOffset": 1}
    if executed:
        durations |= {"addBatch": 3, "commitOffsets": 1}
    return SimpleNamespace(batchId=batch_id, durationMs=durations)


def test_progress_proves_a_commit_only_for_an_executed_batch_or_a_later_id() -> None:
    assert _committed(_progress(4, executed=True), 4)
    assert _committed(_progress(5, executed=False), 4), "an idle trigger after batch 4 finished"
    # An idle trigger reports the id it would run next: batch 4 may have started after it.
    assert not _committed(_progress(4, executed=False), 4)
    assert not _committed(_progress(3, executed=True), 4)
    assert not _committed(None, 4)


def test_gate_refuses_batches_after_close_and_waits_for_the_running_one() -> None:
    gate = BatchGate()
    entered, release = threading.Event(), threading.Event()

    def write(_df: Any, batch_id: int) -> int:
        entered.set()
        release.wait(10)
        return batch_id

    guarded = gate.guard(write)
    no_df: Any = None
    worker = threading.Thread(target=guarded, args=(no_df, 3))
    worker.start()
    assert entered.wait(10)
    assert gate.close(0.1) is False, "batch 3 is still writing"
    release.set()
    worker.join(10)
    assert gate.close(1.0) is True
    assert gate.last_entered == 3
    with pytest.raises(ShutdownInProgress):
        guarded(no_df, 4)
    assert gate.last_entered == 3, "a refused batch wrote nothing"


@pytest.mark.spark
def test_stop_requested_while_a_batch_writes_leaves_that_batch_committed(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Three stops: each lands while batch 1 is writing, i.e. before Spark can write commits/1.
    for run in range(3):
        checkpoint = tmp_path / f"checkpoint-{run}"
        gate = BatchGate()
        writing = threading.Event()

        def write(batch_df: DataFrame, batch_id: int, writing: threading.Event = writing) -> None:
            batch_df.count()
            if batch_id == 1:
                writing.set()
                time.sleep(0.5)  # still writing when the stop is requested

        query = (
            spark.readStream.format("rate")
            .option("rowsPerSecond", 10)
            .load()
            .writeStream.foreachBatch(gate.guard(write))
            .option("checkpointLocation", str(checkpoint))
            .trigger(processingTime="0.2 seconds")
            .start()
        )
        assert writing.wait(120), "batch 1 never started"
        assert stop_gracefully(query, gate, timeout=60) is None, "a refused batch 2 is no error"
        commits = sorted(p.name for p in (checkpoint / "commits").iterdir())
        last = gate.last_entered
        assert last is not None and last >= 1
        assert str(last) in commits, f"batch {last} wrote but is not committed: {commits}"
        assert not [name for name in commits if name.endswith(".tmp")], commits
