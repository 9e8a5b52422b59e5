"""Spark memory settings of the visits writer: defaults that cap the JVM, and the JSON escape hatch."""

from __future__ import annotations

import json
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
        ("VISITS_WRITER_SPARK_CLASS_ARCHIVE", "/nonexistent/spark.jsa"),
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


def test_a_class_archive_goes_after_the_drivers_own_java_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.delenv("VISITS_WRITER_SPARK_CLASS_ARCHIVE", raising=False)  # the test session's own
    own = VisitsWriterSettings().spark_driver_java_options
    assert spark_conf(VisitsWriterSettings())["spark.driver.extraJavaOptions"] == own
    archive = tmp_path / "spark.jsa"
    archive.write_bytes(b"made by streamwatch-spark-class-archive")
    monkeypatch.setenv("VISITS_WRITER_SPARK_CLASS_ARCHIVE", str(archive))
    options = spark_conf(VisitsWriterSettings())["spark.driver.extraJavaOptions"]
    assert options == f"{own} -XX:SharedArchiveFile={archive} -Xshare:auto"


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


def test_tables_on_the_store_need_hadoop_aws_only_where_spark_writes_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """delta-rs (python) reaches S3 itself: no S3A; delta-spark (jvm) writes through S3A, whose jars and
    connection it then gets, the secret staying out of Spark's properties."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("VISITS_WRITER_VISITS_TABLE_PATH", "s3a://lake/delta/visits")
    monkeypatch.setenv("VISITS_WRITER_DEAD_LETTER_TABLE_PATH", "s3a://lake/delta/visits_dead_letters")
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://seaweedfs:8333")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-secret")
    python = VisitsWriterSettings()
    assert not [k for k in spark_conf(python) if "s3a" in k]
    options = python.storage_options(python.visits_table_path)
    assert options is not None and options["AWS_ENDPOINT_URL"] == "http://seaweedfs:8333"
    assert options["AWS_ALLOW_HTTP"] == "true" and options["AWS_SECRET_ACCESS_KEY"] == "the-secret"
    assert python.storage_options(python.checkpoint_path) is None, "a local checkpoint has no store"

    monkeypatch.setenv("VISITS_WRITER_CONNECTOR", "jvm")
    (tmp_path / "delta-spark_2.13-4.4.0.jar").write_bytes(b"")
    monkeypatch.setenv("VISITS_WRITER_SPARK_JARS_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as stopped:
        load_settings(VisitsWriterSettings)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "VISITS_WRITER_S3A_JARS_DIR" in err, err

    s3a = tmp_path / "s3a"
    s3a.mkdir()
    (s3a / "hadoop-aws-3.5.0.jar").write_bytes(b"")
    monkeypatch.setenv("VISITS_WRITER_S3A_JARS_DIR", str(s3a))
    conf = spark_conf(VisitsWriterSettings())
    assert str(s3a / "hadoop-aws-3.5.0.jar") in conf["spark.jars"].split(",")
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://seaweedfs:8333"
    assert "the-secret" not in json.dumps(conf)


def test_a_table_path_of_another_kind_stops_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("VISITS_WRITER_DEAD_LETTER_TABLE_PATH", "abfss://lake@account/dead")
    with pytest.raises(SystemExit) as stopped:
        load_settings(VisitsWriterSettings)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "VISITS_WRITER_DEAD_LETTER_TABLE_PATH" in err and "abfss" in err
