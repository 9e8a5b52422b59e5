"""Graceful shutdown on real signals, and the shared service start sequence."""

from __future__ import annotations

import json
import os
import signal

import pytest

from streamwatch_common.kafka import KafkaSettings
from streamwatch_common.service import fatal_errors, start_service
from streamwatch_common.settings import ServiceSettings, service_config
from streamwatch_common.shutdown import GracefulShutdown

pytestmark = pytest.mark.usefixtures("restore_signals", "restore_logging")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_requests_shutdown(sig: signal.Signals) -> None:
    shutdown = GracefulShutdown().install()
    assert not shutdown.requested
    assert shutdown.wait(0.01) is False
    os.kill(os.getpid(), sig)
    assert shutdown.wait(2) is True
    assert shutdown.requested
    os.kill(os.getpid(), sig)  # a second signal is harmless
    assert shutdown.requested


class ServiceDemoSettings(ServiceSettings, KafkaSettings):
    model_config = service_config("DEMO_")


def test_start_service_logs_settings_without_secrets(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    clean_env.setenv("KAFKA_SASL_PASSWORD", "hunter2")
    settings, shutdown = start_service("demo", ServiceDemoSettings)
    assert settings.kafka_bootstrap_servers == "b:9092"
    (line,) = capsys.readouterr().out.splitlines()
    doc = json.loads(line)
    assert doc["event"] == "service_starting" and doc["service"] == "demo"
    assert doc["settings"]["kafka_bootstrap_servers"] == "b:9092"
    assert "hunter2" not in line
    os.kill(os.getpid(), signal.SIGTERM)
    assert shutdown.wait(2)


def test_fatal_errors_end_as_one_json_line_and_exit_code_1(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    start_service("demo", ServiceDemoSettings)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited, fatal_errors("demo_failed"):
        raise RuntimeError("disk on fire")
    assert exited.value.code == 1
    captured = capsys.readouterr()
    (line,) = captured.out.splitlines()
    doc = json.loads(line)
    assert (doc["event"], doc["level"]) == ("demo_failed", "ERROR")
    assert doc["error"] == "RuntimeError: disk on fire"
    assert "Traceback" in doc["exception"] and captured.err == ""
    with pytest.raises(SystemExit) as chosen, fatal_errors("demo_failed"):
        raise SystemExit(2)  # a chosen exit code passes through
    assert chosen.value.code == 2 and capsys.readouterr().out == ""
