"""Burrow-style lag evaluation from checkpoints laid out as Spark writes them (no broker).

Each test plays a passthrough against a clock: it writes ``offsets/N`` and ``commits/N`` (the commit's
mtime set to the simulated moment), and the observer samples the checkpoint every 15 s against the
topic's end offset, as the lag probe does. The window is 120 s.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from observer.conftest import write_checkpoint
from observer.units import unit_settings
from prometheus_client import REGISTRY
from pydantic import ValidationError

from streamwatch_common.settings import settings_error_line
from streamwatch_observer.checkpoint import read_committed
from streamwatch_observer.lag import LagProbe, PartitionLag
from streamwatch_observer.lag_evaluation import EVALUATIONS, Evaluation, LagEvaluator, Sample, evaluate
from streamwatch_observer.settings import ObserverSettings

WINDOW = 120.0
STEP = 15.0
T0 = 1_763_800_000.0


class Passthrough:
    """A checkpoint written batch by batch, and the observer's evaluator reading it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.batch = -1
        self.evaluator = LagEvaluator(WINDOW)

    def commit(self, offset: int, at: float) -> None:
        self.batch += 1
        write_checkpoint(self.root, self.batch, {0: offset}, "visits")
        os.utime(self.root / "commits" / str(self.batch), (at, at))

    def observe(self, end_offset: int, at: float) -> Evaluation:
        committed = read_committed(self.root, "visits")
        assert committed.offsets is not None and committed.batch_id is not None
        sample = Sample(at, committed.batch_id, committed.commit_time, committed.offsets[0], end_offset)
        return self.evaluator.observe(0, sample)


def test_commit_time_is_the_mtime_of_the_commit_file(tmp_path: Path) -> None:
    job = Passthrough(tmp_path)
    job.commit(10, T0 - 42)
    assert read_committed(tmp_path, "visits").commit_time == T0 - 42


def test_steady_job_is_ok_even_when_it_never_reaches_zero_lag(tmp_path: Path) -> None:
    # 10 records/s arrive; a batch every 5 s takes all but the last second's records: lag 10 at each sample.
    job = Passthrough(tmp_path)
    seen = []
    for i in range(40):
        now = T0 + i * 5
        job.commit(int(10 * (now - T0)), now)
        if i % 3 == 0:
            seen.append(job.observe(int(10 * (now - T0)) + 10 - (i % 2), now + 1))
    assert set(seen) == {"ok"}


def test_a_job_that_falls_behind_warns_once_the_window_is_complete(tmp_path: Path) -> None:
    # 100 records arrive per 15 s; each batch (every 15 s) takes only 60: lag at each commit grows by 40.
    job = Passthrough(tmp_path)
    seen = {}
    for i in range(12):
        now = T0 + i * STEP
        job.commit(60 * i, now)
        seen[i * STEP] = job.observe(100 * i + 100, now + 1)
    assert seen[0] == seen[105] == "ok", "an incomplete window is not judged on trends"
    assert seen[135] == seen[165] == "warn"


def test_lag_that_grows_and_shrinks_is_not_a_warning(tmp_path: Path) -> None:
    job = Passthrough(tmp_path)
    lags = [40, 80, 120, 60, 100, 140, 30, 70, 110, 50, 90, 130, 20]
    seen = []
    for i, lag in enumerate(lags):
        now = T0 + i * STEP
        job.commit(1000 * i, now)
        seen.append(job.observe(1000 * i + lag, now + 1))
    assert set(seen) == {"ok"}


def test_an_unchanged_offset_with_a_backlog_stalls_after_a_window(tmp_path: Path) -> None:
    # The job is paused with 50 records waiting; nothing new arrives (so it is not a STOP).
    job = Passthrough(tmp_path)
    job.commit(100, T0)
    seen = {}
    for i in range(12):
        seen[i * STEP] = job.observe(150, T0 + i * STEP)
    assert seen[105] == "ok"
    assert seen[120] == seen[165] == "stall"


def test_an_unchanged_offset_without_lag_is_ok(tmp_path: Path) -> None:
    job = Passthrough(tmp_path)
    job.commit(100, T0)
    assert {job.observe(100, T0 + i * STEP) for i in range(20)} == {"ok"}


def test_no_commit_for_a_window_while_data_arrives_is_a_stop(tmp_path: Path) -> None:
    job = Passthrough(tmp_path)
    for i in range(9):
        job.commit(10 * i, T0 + i * STEP)
        job.observe(10 * i + 5, T0 + i * STEP + 1)
    last_commit = T0 + 8 * STEP
    seen = {}
    for k in range(1, 12):  # killed: records keep arriving, no commit any more
        seen[k * STEP] = job.observe(85 + 10 * k, last_commit + k * STEP)
    assert seen[105] == "ok", "a commit within the window: not stopped yet"
    assert seen[135] == seen[165] == "stop"


def test_stop_needs_no_complete_window(tmp_path: Path) -> None:
    # An observer started after the job died sees an old commit and growing end offsets within 30 s.
    job = Passthrough(tmp_path)
    job.commit(100, T0)
    assert job.observe(120, T0 + 600) == "ok", "one sample cannot show data arriving"
    assert job.observe(130, T0 + 615) == "stop"


def test_a_job_that_dies_and_is_caught_up_later_stops_one_window_after_its_last_commit(
    tmp_path: Path,
) -> None:
    # Killed at its last commit while nothing arrived; the next records come 90 s later. The zero lag of
    # those idle 90 s is older than the grace by the time the commit is a window old: STOP, as Burrow has
    # it, not a window after the last zero-lag sample.
    job = Passthrough(tmp_path)
    for i in range(6):
        job.commit(10 * i, T0 + i * STEP)
        job.observe(10 * i, T0 + i * STEP + 1)
    killed = T0 + 5 * STEP
    seen = {}
    for k in range(1, 16):
        at = killed + k * STEP
        seen[k * STEP] = job.observe(50 if k * STEP <= 90 else 50 + 10 * k, at)
    assert seen[90] == "ok"
    assert seen[150] == "ok", "caught up within the last half window: not stopped yet"
    assert seen[165] == seen[225] == "stop"


def test_an_idle_job_that_commits_within_half_a_window_of_new_data_never_stops(tmp_path: Path) -> None:
    job = Passthrough(tmp_path)
    job.commit(100, T0)
    seen = [job.observe(100, T0 + i * STEP) for i in range(41)]  # idle for ten minutes: old commit
    data = T0 + 40 * STEP + 1
    seen += [job.observe(100 + 10 * k, data + k * STEP) for k in range(1, 4)]
    job.commit(140, data + 3 * STEP + 5)
    seen += [job.observe(140 + 10 * k, data + 3 * STEP + 5 + k * STEP) for k in range(1, 4)]
    assert set(seen) == {"ok"}


# Every rule and its place in the order: (case, samples as (commit age, committed, end) every STEP
# seconds, oldest first; complete window?, expected). The commit age is read at the newest sample.
_OLD = WINDOW + 60
RULES: list[tuple[str, list[tuple[float, int, int]], bool, Evaluation]] = [
    ("empty window", [], True, "ok"),
    ("rewind, even with no lag now", [(5, 50, 60), (5, 40, 40)], False, "rewind"),
    ("rewind outranks stop", [(_OLD, 50, 60), (_OLD, 40, 70), (_OLD, 40, 80)], False, "rewind"),
    ("no lag now outranks stop", [(_OLD, 50, 60), (_OLD, 50, 70), (_OLD, 70, 70)], False, "ok"),
    (
        "stop outranks an old zero lag",
        [(_OLD, 50, 50), *[(_OLD, 50, 60 + i) for i in range(8)]],
        True,
        "stop",
    ),
    ("a recent zero lag holds off stop", [*[(_OLD, 50, 50) for _ in range(6)], (_OLD, 50, 60)], True, "ok"),
    ("stop needs data arriving", [(_OLD, 50, 60) for _ in range(9)], True, "stall"),
    ("stop needs no complete window", [(_OLD, 50, 60), (_OLD, 50, 61)], False, "stop"),
    ("any zero lag outranks stall", [(5, 50, 50), *[(5, 50, 60) for _ in range(8)]], True, "ok"),
    ("stall and warn need a complete window", [(5, 50, 60) for _ in range(9)], False, "ok"),
    ("stall outranks warn", [(5, 50, 60 + i) for i in range(9)], True, "stall"),
    ("warn", [(5, 10 * i, 10 * i + 10 + 5 * i) for i in range(9)], True, "warn"),
    ("a flat lag keeps up", [(5, 10 * i, 10 * i + 10) for i in range(9)], True, "ok"),
]


@pytest.mark.parametrize(
    ("samples", "complete", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES]
)
def test_each_rule_in_its_order(
    samples: list[tuple[float, int, int]], complete: bool, expected: Evaluation
) -> None:
    now = T0 + len(samples) * STEP
    window = [
        Sample(T0 + (i + 1) * STEP, i, now - age, committed, end)
        for i, (age, committed, end) in enumerate(samples)
    ]
    assert evaluate(window, now, WINDOW, complete) == expected


def test_a_checkpoint_restored_from_an_older_copy_is_a_rewind(tmp_path: Path) -> None:
    job = Passthrough(tmp_path / "checkpoint")
    for i in range(4):
        job.commit(100 * i, T0 + i * STEP)
        job.observe(100 * i + 20, T0 + i * STEP + 1)
    shutil.copytree(tmp_path / "checkpoint", tmp_path / "copy")  # the backup: batches 0..3
    for i in range(4, 8):
        job.commit(100 * i, T0 + i * STEP)
        job.observe(100 * i + 20, T0 + i * STEP + 1)
    shutil.rmtree(tmp_path / "checkpoint")
    shutil.copytree(tmp_path / "copy", tmp_path / "checkpoint")
    restored = T0 + 8 * STEP + 1
    assert read_committed(tmp_path / "checkpoint", "visits").offsets == {0: 300}
    assert job.observe(800, restored) == "rewind"
    # Judged on the offsets, not on the lag: a fast replay that reaches zero lag still shows the rewind...
    assert job.observe(300, restored + STEP) == "rewind"
    # ...until the step back leaves the window.
    assert job.observe(300, restored + WINDOW + STEP) == "ok"


def test_a_window_left_unfed_for_a_whole_window_starts_afresh(tmp_path: Path) -> None:
    # The partition was owned by another replica meanwhile: the old, paused samples do not make a stall.
    job = Passthrough(tmp_path)
    job.commit(100, T0)
    for i in range(3):
        job.observe(150, T0 + i * STEP)
    assert job.observe(150, T0 + 1000) == "ok"
    assert job.observe(150, T0 + 1000 + STEP) == "ok"


def test_rewind_outranks_stop_and_stop_outranks_stall() -> None:
    old = T0 - 1000
    stopped = [Sample(T0 + i * STEP, 3, old, 50, 60 + i) for i in range(10)]
    assert evaluate(stopped, T0 + 9 * STEP, WINDOW, complete=True) == "stop"
    stalled = [Sample(T0 + i * STEP, 3, old, 50, 60) for i in range(10)]
    assert evaluate(stalled, T0 + 9 * STEP, WINDOW, complete=True) == "stall"
    rewound = [*stopped[:5], Sample(T0 + 5 * STEP, 1, old, 40, 70), *stopped[6:]]
    assert evaluate(rewound, T0 + 9 * STEP, WINDOW, complete=True) == "rewind"
    assert evaluate([], T0, WINDOW, complete=True) == "ok"


def test_the_evaluation_is_one_series_per_status_and_leaves_with_the_partition(tmp_path: Path) -> None:
    config = {"bootstrap.servers": "127.0.0.1:9", "group.id": "unit"}
    probe = LagProbe(config, "visits-eval", tmp_path, WINDOW, job="passthrough")
    try:
        probe._export(PartitionLag(3, "ok", 50, 60, 10, 4.0, 7, T0, evaluation="stall"))
        values = {s: _gauge("observer_lag_evaluation", "3", s) for s in EVALUATIONS}
        assert values == {"ok": 0, "warn": 0, "stall": 1, "stop": 0, "rewind": 0}
        probe._export(PartitionLag(3, "checkpoint_damaged", None, 60, None, None, None))
        assert _gauge("observer_lag_evaluation", "3", "stall") is None, "no judgement without a checkpoint"
        probe._export(PartitionLag(3, "ok", 50, 60, 10, 4.0, 7, T0, evaluation="rewind"))
        probe.forget([3])
        assert _gauge("observer_lag_evaluation", "3", "rewind") is None
    finally:
        probe.close()


def _gauge(name: str, partition: str, status: str) -> float | None:
    labels = {"spark_job": "passthrough", "topic": "visits-eval", "partition": partition, "status": status}
    return REGISTRY.get_sample_value(name, labels)


def test_a_window_shorter_than_two_lag_intervals_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValidationError) as caught:
        unit_settings(lag_interval_seconds=15, lag_evaluation_window_seconds=20)
    line = settings_error_line(ObserverSettings, caught.value)
    variable = "OBSERVER_LAG_EVALUATION_WINDOW_SECONDS"
    assert line.startswith(f"configuration error: {variable}: must be at least twice"), line
    accepted = unit_settings(lag_interval_seconds=15, lag_evaluation_window_seconds=30)
    assert accepted.lag_evaluation_window_seconds == 30
