"""Spark memory settings of the visits writer: defaults that cap the JVM, and the JSON escape hatch."""

from __future__ import annotations

import pytest

from streamwatch_common.settings import load_settings
from streamwatch_visits_writer.job import spark_conf
from streamwatch_visits_writer.settings import VisitsWriterSettings


def test_defaults_cap_the_driver_and_user_conf_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    defaults = spark_conf(VisitsWriterSettings())
    assert defaults["spark.driver.memory"] == "512m"
    assert "-XX:+UseSerialGC" in defaults["spark.driver.extraJavaOptions"]
    assert "spark.sql.extensions" not in defaults
    monkeypatch.setenv("VISITS_WRITER_SPARK_DRIVER_MEMORY", "768m")
    monkeypatch.setenv("VISITS_WRITER_SPARK_CONF", '{"spark.python.worker.reuse": "false", "spark.x": "1"}')
    monkeypatch.setenv("VISITS_WRITER_CONNECTOR", "jvm")
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
