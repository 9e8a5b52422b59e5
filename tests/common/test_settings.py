"""Settings loading: one stderr line naming the variable, exit code 2, secrets never echoed, unknown
prefixed variables refused."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from pydantic import Field, SecretStr

from streamwatch_common.kafka import KafkaSettings
from streamwatch_common.settings import EXIT_BAD_SETTINGS, ServiceSettings, load_settings, service_config
from streamwatch_common.settings_doc import registered_settings
from streamwatch_dev.services import VENV_BIN, service_env


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


def test_unknown_prefixed_variable_is_refused_with_the_nearest_name(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    clean_env.setenv("DEMO_RAET", "2")
    assert (
        load_error(capsys)
        == "configuration error: DEMO_RAET: not a setting of DemoSettings; did you mean DEMO_RATE?"
    )


def test_unknown_variable_is_refused_whatever_its_case_and_without_a_guess_when_none_is_near(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    clean_env.setenv("demo_colour", "blue")  # pydantic-settings reads names without regard to case
    assert load_error(capsys) == "configuration error: demo_colour: not a setting of DemoSettings"


def test_a_shared_setting_under_the_service_prefix_is_refused(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """LOG_LEVEL is read unprefixed in every service: DEMO_LOG_LEVEL would be silently ignored."""
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    clean_env.setenv("DEMO_LOG_LEVEL", "DEBUG")
    assert load_error(capsys).startswith("configuration error: DEMO_LOG_LEVEL: not a setting of DemoSettings")


def test_unknown_variables_and_bad_values_share_the_one_line(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    clean_env.setenv("DEMO_RATEE", "2")
    clean_env.setenv("DEMO_RATE", "fast")
    line = load_error(capsys)
    assert "DEMO_RATEE: not a setting" in line and "DEMO_RATE: " in line and "'fast'" in line


def test_other_services_variables_and_unprefixed_names_are_not_this_services_business(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    clean_env.setenv("OBSERVER_WINDOWSECONDS", "30")  # another service's prefix
    clean_env.setenv("DEMOGRAPHICS", "x")  # the prefix is DEMO_, underscore included
    assert load_settings(DemoSettings).rate == 1.0


@pytest.mark.parametrize("service", sorted(registered_settings()))
def test_every_service_refuses_a_misspelt_setting_of_its_own(
    service: str, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_cls = registered_settings()[service]
    prefix = str(settings_cls.model_config["env_prefix"])
    for name in list(os.environ):
        if name.upper().startswith(prefix):
            clean_env.delenv(name)
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    clean_env.setenv("ELASTICSEARCH_URL", "http://es:9200")
    clean_env.setenv("PROFILE_PUBLISHER_TOKEN", "t" * 32)  # the publisher's one required setting
    assert load_settings(settings_cls), "the service's environment is complete without the typo"
    clean_env.setenv(f"{prefix}PUSHJOB", "x")
    with pytest.raises(SystemExit) as exc_info:
        load_settings(settings_cls)
    assert exc_info.value.code == EXIT_BAD_SETTINGS
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"configuration error: {prefix}PUSHJOB: not a setting of {settings_cls.__name__}")


def test_the_observer_stops_at_start_on_a_misspelt_window(tmp_path: Path) -> None:
    """`--set observer.settings.windowSeconds=30` rendered OBSERVER_WINDOWSECONDS, which the observer used to
    ignore, keeping its 60 s window: its console script now exits 2 with one line naming the variable."""
    env = service_env(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
        ELASTICSEARCH_URL="http://127.0.0.1:9",
        OBSERVER_WINDOWSECONDS="30",
    )
    done = subprocess.run(
        [str(VENV_BIN / "streamwatch-observer")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_BAD_SETTINGS, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "configuration error: OBSERVER_WINDOWSECONDS: not a setting of ObserverSettings;"
        " did you mean OBSERVER_WINDOW_SECONDS?"
    ]
