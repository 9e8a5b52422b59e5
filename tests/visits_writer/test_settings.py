"""Spark memory settings of the visits writer: defaults that cap the JVM, and the JSON escape hatch."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamwatch_common.settings import load_settings
from streamwatch_visits_writer.job import spark_conf
from streamwatch_visits_writer.settings import VisitsWriterSettings


def test_defaults_cap_the_driver_and_user_conf_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    defaults = spark_conf(VisitsWriterSettings())
    assert defaults["spark.driver.memory"] == "512m"
    assert "-XX:+UseSerialGC" in defaults["spark.driver.extraJavaOptions"]
    assert "spark.sql.extensions" not in defaults
    monkeypatch.setenv("VISITS_WRITER_SPARK_DRIVER_MEMORY", "768m")
    monkeypatch.setenv("VISITS_WRITER_SPARK_CONF", '{"spark.python.worker.reuse": "false", "spark.x": "1"}')
    monkeypatch.setenv("VISITS_WRITER_CONNECTOR", "jvm")
    (tmp_path / "delta-spark_2.13-4.4.0.jar").write_bytes(b"")
    monkeypatch.setenv("VISITS_WRITER_SPARK_JARS_DIR", str(tmp_path))
    conf = spark_conf(VisitsWriterSettings())
    assert conf["spark.driver.memory"] == "768m"
    assert conf["spark.python.worker.reuse"] == "false" and conf["spark.x"] == "1"
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VISITS_WRITER_SPARK_DRIVER_MEMORY", "lots"),
        ("VISITS_WRITER_SPARK_DRIVER_MEMORY", "384m"),
        ("VISITS_WRITER_SPARK_CONF", "[1]"),
    ],
)
def test_a_bad_spark_setting_stops_with_its_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings(VisitsWriterSettings)
    assert stopped.value.code == 2
    assert name in capsys.readouterr().err


def test_jvm_connector_without_jars_stops_naming_the_jar_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("VISITS_WRITER_CONNECTOR", "jvm")
    for jars_dir in (None, str(tmp_path)):  # unset, then a directory without jars
        if jars_dir:
            monkeypatch.setenv("VISITS_WRITER_SPARK_JARS_DIR", jars_dir)
        with pytest.raises(SystemExit) as stopped:
            load_settings(VisitsWriterSettings)
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "VISITS_WRITER_SPARK_JARS_DIR" in err, err

    (tmp_path / "delta-spark_2.13-4.4.0.jar").write_bytes(b"")
    conf = spark_conf(VisitsWriterSettings())
    assert conf["spark.jars"] == str(tmp_path / "delta-spark_2.13-4.4.0.jar")
    monkeypatch.setenv("VISITS_WRITER_CONNECTOR", "python")
    assert "spark.jars" not in spark_conf(VisitsWriterSettings()), "the python path loads no jars"


def test_shared_job_settings_keep_their_checks_and_meaning_under_a_job_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamwatch_common.spark.job_settings import SparkJobSettings

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    shared = SparkJobSettings.model_fields["trigger_interval_seconds"]
    own = VisitsWriterSettings.model_fields["trigger_interval_seconds"]
    assert own.default != shared.default and own.description == shared.description
    monkeypatch.setenv("VISITS_WRITER_SOURCE_TOPIC", "clicks")
    assert VisitsWriterSettings().source_topic == "clicks"
    monkeypatch.setenv("VISITS_WRITER_TRIGGER_INTERVAL_SECONDS", "-1")
    with pytest.raises(SystemExit) as stopped:
        load_settings(VisitsWriterSettings)
    assert stopped.value.code == 2
    assert "VISITS_WRITER_TRIGGER_INTERVAL_SECONDS" in capsys.readouterr().err
