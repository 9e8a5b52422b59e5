"""Settings loading: one stderr line naming the variable, exit code 2, secrets never echoed."""

from __future__ import annotations

import json

import pytest
from pydantic import Field, SecretStr

from streamwatch_common.kafka import KafkaSettings
from streamwatch_common.settings import EXIT_BAD_SETTINGS, ServiceSettings, load_settings, service_config


class DemoSettings(ServiceSettings, KafkaSettings):
    model_config = service_config("DEMO_")

    rate: float = Field(default=1.0, ge=0, description="records per second")
    api_token: SecretStr = Field(default=SecretStr("x" * 16), min_length=16, description="a secret")


def load_error(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc_info:
        load_settings(DemoSettings)
    assert exc_info.value.code == EXIT_BAD_SETTINGS
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_valid_environment_loads_with_prefix_and_shared_names(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    clean_env.setenv("DEMO_RATE", "2.5")
    clean_env.setenv("RATE", "99")  # unprefixed: not this service's setting
    clean_env.setenv("LOG_FORMAT", "console")
    settings = load_settings(DemoSettings)
    assert settings.rate == 2.5
    assert settings.log_format == "console"
    assert settings.kafka_bootstrap_servers == "b:9092"


def test_non_numeric_value_names_the_variable_and_the_value(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    clean_env.setenv("DEMO_RATE", "fast")
    line = load_error(capsys)
    assert line.startswith("configuration error: DEMO_RATE: ")
    assert "'fast'" in line


def test_missing_required_variable_is_named(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load_error(capsys) == "configuration error: KAFKA_BOOTSTRAP_SERVERS: required but not set"


def test_several_problems_still_make_one_line(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("DEMO_RATE", "-1")
    clean_env.setenv("LOG_LEVEL", "LOUD")
    line = load_error(capsys)
    for variable in ("KAFKA_BOOTSTRAP_SERVERS", "DEMO_RATE", "LOG_LEVEL"):
        assert variable in line


def test_invalid_secret_is_named_but_never_echoed(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    clean_env.setenv("DEMO_API_TOKEN", "hunter2")
    line = load_error(capsys)
    assert "DEMO_API_TOKEN" in line
    assert "hunter2" not in line


def test_malformed_json_properties_exit_2_without_echoing_them(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    clean_env.setenv("KAFKA_PROPERTIES", '{"sasl.password": "hunter2"')  # no closing brace
    line = load_error(capsys)
    assert line.startswith("configuration error: KAFKA_PROPERTIES: ")
    assert "hunter2" not in line


def test_logged_settings_mask_secrets(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    clean_env.setenv("KAFKA_SASL_PASSWORD", "hunter2")
    clean_env.setenv("DEMO_API_TOKEN", "a-very-long-token-value")
    settings = load_settings(DemoSettings)
    dumped = json.dumps(settings.model_dump(mode="json"))
    assert "hunter2" not in dumped and "a-very-long-token-value" not in dumped
    assert settings.producer_config()["sasl.password"] == "hunter2"
