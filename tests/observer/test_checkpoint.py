"""Reading Spark checkpoints: not started, committed batches, partial files, new partitions."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
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


def _offsets_file(root: Path, batch_id: int, source_lines: list[str]) -> None:
    """``offsets/N`` and ``commits/N`` of a query with several sources, one line each as Spark writes them."""
    (root / "offsets").mkdir(parents=True, exist_ok=True)
    (root / "commits").mkdir(parents=True, exist_ok=True)
    metadata = '{"batchWatermarkMs":0,"batchTimestampMs":1763800000000,"conf":{}}'
    (root / "offsets" / str(batch_id)).write_text("\n".join(["v1", metadata, *source_lines]))
    (root / "commits" / str(batch_id)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def test_every_source_line_is_read_whichever_names_the_topic(tmp_path: Path) -> None:
    # Spark's JVM Kafka source line first, the observed topic second; then a source without offsets yet.
    _offsets_file(tmp_path / "a", 0, ['{"clicks":{"0":4}}', '{"visits":{"1":8,"0":6}}'])
    assert read_committed(tmp_path / "a", "visits").offsets == {0: 6, 1: 8}
    _offsets_file(tmp_path / "b", 3, ['{"visits":{"0":11}}', "-"])
    assert read_committed(tmp_path / "b", "visits").offsets == {0: 11}
    _offsets_file(tmp_path / "c", 2, ["-", '{"visits":{"0":2}}'])
    committed = read_committed(tmp_path / "c", "visits")
    assert (committed.batch_id, committed.offsets, committed.damaged) == (2, {0: 2}, False)


def test_a_checkpoint_whose_only_commit_is_truncated_is_damaged_not_unstarted(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 0, {0: 5}, "visits")
    (tmp_path / "offsets" / "0").write_text('v1\n{"batchWatermarkMs":0}\n{"visits": {"0"')
    committed = read_committed(tmp_path, "visits")
    assert committed.offsets is None and committed.damaged
    (tmp_path / "offsets" / "0").write_text('v1\n{"batchWatermarkMs":0}\n["visits"]')
    assert read_committed(tmp_path, "visits").damaged
    assert not read_committed(tmp_path / "absent", "visits").damaged


def test_a_checkpoint_of_another_log_version_is_damaged_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A layout this reader does not know (a Spark writing `v2` offset or commit logs) is never guessed
    at: the checkpoint reads as damaged, and the warning names the file and the version."""
    write_checkpoint(tmp_path, 0, {0: 5}, "visits")
    assert read_committed(tmp_path, "visits").offsets == {0: 5}
    write_checkpoint(tmp_path, 1, {0: 9}, "visits")
    offsets = tmp_path / "offsets" / "1"
    offsets.write_text(offsets.read_text().replace("v1", "v2", 1))
    with caplog.at_level(logging.INFO, logger="streamwatch_observer.checkpoint"):
        committed = read_committed(tmp_path, "visits")
    # The older batch of the known version still reads; the newer one is named.
    assert (committed.batch_id, committed.offsets) == (0, {0: 5})
    (record,) = [r for r in caplog.records if r.msg == "checkpoint_layout_unsupported"]
    assert record.levelno == logging.WARNING
    assert record.__dict__["file"] == f"{tmp_path}/offsets/1" and "'v2'" in record.__dict__["error"]
    # Every commit of another version: damaged, not "not started", and the commit file is named.
    other = tmp_path / "other"
    write_checkpoint(other, 0, {0: 5}, "visits")
    (other / "commits" / "0").write_text('v3\n{"nextBatchWatermarkMs":0}')
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="streamwatch_observer.checkpoint"):
        assert read_committed(other, "visits").damaged
    (record,) = [r for r in caplog.records if r.msg == "checkpoint_layout_unsupported"]
    assert record.__dict__["file"] == f"{other}/commits/0"


def test_a_file_or_rate_source_beside_the_kafka_one_is_not_damage(tmp_path: Path) -> None:
    _offsets_file(tmp_path, 7, ["51", '{"visits":{"0":3}}'])
    committed = read_committed(tmp_path, "visits")
    assert (committed.offsets, committed.damaged) == ({0: 3}, False)
