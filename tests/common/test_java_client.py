"""librdkafka properties in the Java client's terms (the jvm connector), and the settings check at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streamwatch_common.kafka import LIBRDKAFKA_ONLY
from streamwatch_common.settings import settings_error_line
from streamwatch_common.spark.java_client import JavaClientConfigError, java_client_properties
from streamwatch_passthrough.settings import PassthroughSettings

SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
SECRET = "pw-4f9c2e"


@pytest.mark.parametrize(
    ("mechanism_key", "mechanism", "module"),
    [
        ("sasl.mechanism", "SCRAM-SHA-512", SCRAM),
        ("sasl.mechanism", "SCRAM-SHA-256", SCRAM),
        ("sasl.mechanisms", "PLAIN", PLAIN),  # librdkafka's plural spelling
        ("sasl.mechanism", "scram-sha-512", SCRAM),
    ],
)
def test_username_and_password_become_one_jaas_line_of_the_mechanisms_login_module(
    mechanism_key: str, mechanism: str, module: str
) -> None:
    java = java_client_properties(
        {
            "bootstrap.servers": "b:9093",
            "security.protocol": "SASL_SSL",
            mechanism_key: mechanism,
            "sasl.username": "streamwatch",
            "sasl.password": "pa55",
        }
    )
    assert java == {
        "bootstrap.servers": "b:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": mechanism,
        "sasl.jaas.config": f'{module} required username="streamwatch" password="pa55";',
    }


def test_quotes_and_backslashes_in_credentials_are_escaped_for_the_jaas_parser() -> None:
    java = java_client_properties(
        {"sasl.mechanism": "PLAIN", "sasl.username": 'a"b', "sasl.password": 'p\\"; x="y'}
    )
    assert java["sasl.jaas.config"] == f'{PLAIN} required username="a\\"b" password="p\\\\\\"; x=\\"y";'


def test_an_operators_own_jaas_line_wins_and_the_librdkafka_credentials_are_not_passed_on() -> None:
    own = f'{SCRAM} required username="x" password="y";'
    java = java_client_properties(
        {
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": own,
            "sasl.username": "u",
            "sasl.password": "p",
        }
    )
    assert java == {"sasl.mechanism": "SCRAM-SHA-512", "sasl.jaas.config": own}


def test_the_ca_file_becomes_a_pem_trust_store_and_librdkafka_only_keys_are_dropped() -> None:
    java = java_client_properties(
        {"ssl.ca.location": "/etc/kafka/ca.crt", **dict.fromkeys(LIBRDKAFKA_ONLY, "1"), "acks": "all"}
    )
    assert java == {
        "ssl.truststore.location": "/etc/kafka/ca.crt",
        "ssl.truststore.type": "PEM",
        "acks": "all",
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"sasl.username": "u", "sasl.password": SECRET}, "need sasl.mechanism"),
        ({"sasl.mechanism": "GSSAPI", "sasl.username": "u", "sasl.password": SECRET}, "GSSAPI takes no"),
        ({"sasl.mechanism": "PLAIN", "sasl.username": "u"}, "needs KAFKA_SASL_PASSWORD"),
        ({"sasl.mechanism": "PLAIN", "sasl.password": SECRET}, "needs sasl.username"),
        ({"ssl.key.location": "/k.pem", "ssl.certificate.location": "/c.pem"}, "ssl.certificate.location"),
    ],
)
def test_what_cannot_be_translated_is_refused_by_name(config: dict[str, str], message: str) -> None:
    with pytest.raises(JavaClientConfigError, match=message) as raised:
        java_client_properties(config)
    assert SECRET not in str(raised.value)


def test_a_jvm_job_with_untranslatable_credentials_stops_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (jars := tmp_path / "jars").mkdir()
    (jars / "spark-sql-kafka.jar").write_bytes(b"")
    for name, value in {
        "KAFKA_BOOTSTRAP_SERVERS": "b:9093",
        "KAFKA_PROPERTIES": '{"security.protocol": "SASL_SSL", "sasl.username": "u"}',
        "KAFKA_SASL_PASSWORD": "top-secret-value",
        "PASSTHROUGH_CONNECTOR": "jvm",
        "PASSTHROUGH_SPARK_JARS_DIR": str(jars),
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        PassthroughSettings()
    line = settings_error_line(PassthroughSettings, raised.value)
    assert line.startswith("configuration error: KAFKA_PROPERTIES: "), line
    assert "sasl.mechanism" in line
    assert "top-secret-value" not in line
    monkeypatch.setenv("PASSTHROUGH_CONNECTOR", "python")  # librdkafka takes the same settings as they are
    assert PassthroughSettings().consumer_config("g")["sasl.username"] == "u"
