"""``streamwatch-visits-writer create-tables`` as a subprocess: idempotent, clear errors, exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable
from visits_writer.stack import run_writer

from streamwatch_dev.services import service_env
from streamwatch_visits_writer.schema import DEAD_LETTER_TABLE, VISITS_TABLE


def create_tables(tmp: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = service_env(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",  # required by the settings; never contacted by this command
        VISITS_WRITER_VISITS_TABLE_PATH=str(tmp / "visits"),
        VISITS_WRITER_DEAD_LETTER_TABLE_PATH=str(tmp / "dead"),
        **extra,
    )
    return run_writer(env, "create-tables")


def test_twice_is_fine_and_changes_nothing(tmp_path: Path) -> None:
    first = create_tables(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count('"table_created"') == 2
    visits, dead = DeltaTable(str(tmp_path / "visits")), DeltaTable(str(tmp_path / "dead"))
    assert pa.schema(visits.schema().to_arrow()).names == VISITS_TABLE.names
    assert pa.schema(dead.schema().to_arrow()).names == DEAD_LETTER_TABLE.names
    before = (
        visits.version(),
        dead.version(),
        sorted(p.name for p in (tmp_path / "visits" / "_delta_log").iterdir()),
    )

    second = create_tables(tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count('"table_exists"') == 2 and '"table_created"' not in second.stdout
    after = (
        DeltaTable(str(tmp_path / "visits")).version(),
        DeltaTable(str(tmp_path / "dead")).version(),
        sorted(p.name for p in (tmp_path / "visits" / "_delta_log").iterdir()),
    )
    assert after == before


def test_an_incompatible_table_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    DeltaTable.create(str(tmp_path / "visits"), pa.schema([("visit_id", pa.int64()), ("page", pa.string())]))
    result = create_tables(tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "table visits" in lines[0] and "incompatible schema" in lines[0]
    assert "column visit_id is" in lines[0] and "missing column event_time" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_a_bad_setting_is_exit_2_naming_the_variable(tmp_path: Path) -> None:
    result = create_tables(tmp_path, VISITS_WRITER_CONNECTOR="scala")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "VISITS_WRITER_CONNECTOR" in result.stderr


def test_the_job_on_an_incompatible_table_exits_1_before_starting_spark(tmp_path: Path) -> None:
    """The shared runner's start-up failure path: the job's prepare step fails, Spark never starts."""
    DeltaTable.create(str(tmp_path / "visits"), pa.schema([("visit_id", pa.int64()), ("page", pa.string())]))
    env = service_env(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
        VISITS_WRITER_VISITS_TABLE_PATH=str(tmp_path / "visits"),
        VISITS_WRITER_DEAD_LETTER_TABLE_PATH=str(tmp_path / "dead"),
        VISITS_WRITER_CHECKPOINT_PATH=str(tmp_path / "checkpoint"),
        OPS_PORT="0",
    )
    result = run_writer(env)
    assert result.returncode == 1, result.stdout + result.stderr
    events = [json.loads(line)["event"] for line in result.stdout.splitlines() if line.startswith("{")]
    assert "table_incompatible" in events and "job_failed" in events, events
    assert "spark_session_started" not in events
    assert "Traceback" not in result.stderr
