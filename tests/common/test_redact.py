"""No secret reaches a log line: SecretStr settings, secret-named keys in property bags, URL passwords.

Each service's start line is checked with its own settings class, loaded from the environment a pod would
give it with secrets in every place one can hide.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest

from streamwatch_common.logs import configure_logging
from streamwatch_common.redact import MASK, redact, redact_text
from streamwatch_common.service import start_service
from streamwatch_common.settings import ServiceSettings, env_names

pytestmark = pytest.mark.usefixtures("restore_signals", "restore_logging")

SECRET = "hunter2"
SETTINGS = {ep.name: ep.load() for ep in entry_points(group="streamwatch.settings")}


def test_secret_named_keys_and_url_passwords_are_masked() -> None:
    logged = redact(
        {
            "kafka_properties": {"sasl.password": SECRET, "security.protocol": "SASL_SSL", "linger.ms": 5},
            "spark_conf": {"spark.authenticate.secret": SECRET, "fs.s3a.secret.key": SECRET},
            "url": f"https://elastic:{SECRET}@es.example:9200/x",
            "extra_keys": ["spark.authenticate.secret"],
        }
    )
    assert SECRET not in json.dumps(logged)
    assert logged["kafka_properties"] == {
        "sasl.password": MASK,
        "security.protocol": "SASL_SSL",
        "linger.ms": 5,
    }
    assert logged["url"] == f"https://elastic:{MASK}@es.example:9200/x"
    assert logged["extra_keys"] == ["spark.authenticate.secret"]  # names stay readable
    assert redact_text("http://host:9091/metrics") == "http://host:9091/metrics"


def test_every_log_line_is_redacted_whoever_logs(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    configure_logging("observer", "json", "INFO")
    log = logging.getLogger("streamwatch_tests.redact")
    log.info("connecting", extra={"url": f"http://u:{SECRET}@h:1", "props": {"api_token": SECRET}})
    try:
        raise ConnectionError(f"cannot reach http://u:{SECRET}@h:1")
    except ConnectionError:
        log.exception("failed")
    out = capsys.readouterr().out
    assert SECRET not in out
    assert out.count(MASK) >= 3  # the field, the property, the exception (its source line too)


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_service_start_line_prints_no_secret(
    service: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_cls: type[ServiceSettings] = SETTINGS[service]
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "KAFKA_PROPERTIES": json.dumps({"sasl.username": "u", "sasl.password": SECRET}),
        "KAFKA_SASL_PASSWORD": SECRET,
        "ELASTICSEARCH_URL": f"http://elastic:{SECRET}@127.0.0.1:9200",
        "ELASTICSEARCH_PASSWORD": SECRET,
        f"{prefix}SPARK_CONF": json.dumps({"spark.ssl.keyPassword": SECRET}),
        f"{prefix}PUSHGATEWAY_URL": f"http://push:{SECRET}@127.0.0.1:9091",
        f"{prefix}TOKEN": SECRET * 3,  # the publisher's upload token (a minimum length applies)
        f"{prefix}PROFILE_PUBLISHER_URL": "http://127.0.0.1:8000",
        f"{prefix}PROFILE_PUBLISHER_TOKEN": SECRET,
    }
    # Each service reads only its own of the prefixed ones and refuses the others at start.
    known = env_names(settings_cls)
    for name, value in env.items():
        if not name.startswith(prefix) or name in known:
            monkeypatch.setenv(name, value)
    start_service(service, settings_cls)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (start,) = [line for line in lines if line["event"] == "service_starting"]
    assert SECRET not in json.dumps(start), start
    assert MASK in json.dumps(start)


def test_a_field_named_by_our_code_keeps_its_value(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    configure_logging("observer", "json", "INFO")
    logging.getLogger("streamwatch_tests.redact").info(
        "profile_uploaded", extra={"key": "passthrough_p0-0-29"}
    )
    assert json.loads(capsys.readouterr().out)["key"] == "passthrough_p0-0-29"
