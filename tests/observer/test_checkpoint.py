"""Reading Spark checkpoints: not started, committed batches, partial files, new partitions."""

from __future__ import annotations

from pathlib import Path

from observer.conftest import write_checkpoint

from streamwatch_observer.checkpoint import read_committed


def test_missing_or_empty_checkpoint_is_not_started(tmp_path: Path) -> None:
    assert read_committed(tmp_path / "absent", "visits").offsets is None
    (tmp_path / "offsets").mkdir()
    (tmp_path / "offsets" / "0").write_text('v1\n{}\n{"visits": {"0": 5}}')  # planned, not committed
    assert read_committed(tmp_path, "visits").offsets is None


def test_newest_committed_batch_wins_over_planned_ones(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 0, {0: 5, 1: 7}, "visits")
    write_checkpoint(tmp_path, 1, {0: 9, 1: 12}, "visits")
    write_checkpoint(tmp_path, 2, {0: 20, 1: 30}, "visits", commit=False)
    (tmp_path / "commits" / ".2.abc.tmp").write_text("v1\n")
    committed = read_committed(tmp_path, "visits")
    assert committed.batch_id == 1
    assert committed.offsets == {0: 9, 1: 12}


def test_partial_files_fall_back_to_the_previous_complete_batch(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 4, {0: 10}, "visits")
    write_checkpoint(tmp_path, 5, {0: 15}, "visits")
    (tmp_path / "offsets" / "5").write_text('v1\n{"batchWatermarkMs":0}\n{"visits": {"0": 1')
    assert read_committed(tmp_path, "visits").offsets == {0: 10}
    write_checkpoint(tmp_path, 6, {0: 20}, "visits")
    (tmp_path / "commits" / "6").write_text("v")
    assert read_committed(tmp_path, "visits").batch_id == 4


def test_other_source_topics_are_ignored(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 0, {0: 3}, "other")
    assert read_committed(tmp_path, "visits").offsets is None
