"""librdkafka client properties in the Java Kafka client's terms, for Spark's JVM connector.

Every service configures Kafka once, in librdkafka's terms (:class:`~streamwatch_common.kafka.KafkaSettings`).
Spark's ``format("kafka")`` source and sink run the Java client. Most property names are the same in both
(``bootstrap.servers``, ``client.id``, ``security.protocol``, ``sasl.mechanism``, ``acks``...), but the
credentials are not: librdkafka takes ``sasl.username`` and ``sasl.password``, Java a JAAS line in
``sasl.jaas.config``; librdkafka's CA file is ``ssl.ca.location``, Java's a PEM trust store. This module
translates those and refuses what it cannot translate, so a ``jvm`` job stops at start with one line
naming the property instead of failing to authenticate once its query runs.

Usage::

    options = {f"kafka.{k}": v for k, v in java_client_properties(settings.consumer_config("g")).items()}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamwatch_common.kafka import LIBRDKAFKA_ONLY

_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
# The Java login module of each mechanism a username and password are enough for.
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": _SCRAM,
    "SCRAM-SHA-512": _SCRAM,
}
# librdkafka's client certificate and key files: the Java client wants them in a key store instead.
_NO_JAVA_COUNTERPART = (
    "ssl.certificate.location",
    "ssl.certificate.pem",
    "ssl.key.location",
    "ssl.key.pem",
    "ssl.ca.pem",
)


class JavaClientConfigError(ValueError):
    """A librdkafka property the Java client cannot be given."""


def java_client_properties(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (librdkafka properties) as Java client properties; raises :class:`JavaClientConfigError`.

    A ``sasl.jaas.config`` given by the operator is kept as it is and wins over ``sasl.username`` and
    ``sasl.password``.
    """
    props = {key: value for key, value in config.items() if key not in LIBRDKAFKA_ONLY}
    refused = sorted(key for key in props if key in _NO_JAVA_COUNTERPART)
    if refused:
        raise JavaClientConfigError(
            f"{', '.join(refused)} has no Java client counterpart on the jvm connector; give the Java "
            "properties (ssl.keystore.type, ssl.keystore.location...) instead"
        )
    # librdkafka accepts both spellings; Java only the singular.
    if "sasl.mechanisms" in props:
        props.setdefault("sasl.mechanism", props.pop("sasl.mechanisms"))
    username = props.pop("sasl.username", None)
    password = props.pop("sasl.password", None)
    if (username is not None or password is not None) and "sasl.jaas.config" not in props:
        props["sasl.jaas.config"] = _jaas_line(props.get("sasl.mechanism"), username, password)
    ca_file = props.pop("ssl.ca.location", None)
    if ca_file is not None:
        props.setdefault("ssl.truststore.location", ca_file)
        props.setdefault("ssl.truststore.type", "PEM")
    return props


def _jaas_line(mechanism: Any, username: Any, password: Any) -> str:
    if mechanism is None:
        raise JavaClientConfigError(
            "sasl.username and sasl.password need sasl.mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
        )
    module = _LOGIN_MODULES.get(str(mechanism).upper())
    if module is None:
        raise JavaClientConfigError(
            f"sasl.mechanism {mechanism} takes no username and password on the jvm connector; give "
            "sasl.jaas.config instead"
        )
    if username is None or password is None:
        missing = "sasl.username" if username is None else "KAFKA_SASL_PASSWORD"
        raise JavaClientConfigError(f"SASL {mechanism} needs {missing} too")
    return f'{module} required username="{_quoted(username)}" password="{_quoted(password)}";'


def _quoted(value: Any) -> str:
    # The JAAS parser reads a quoted value with backslash escapes.
    return str(value).replace("\\", "\\\\").replace('"', '\\"')
