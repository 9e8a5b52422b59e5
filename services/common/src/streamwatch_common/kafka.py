"""Kafka client configuration shared by every service.

Connection settings have one unprefixed name in every service. Any librdkafka property can be added
without code changes through JSON objects in the environment, e.g.
``KAFKA_PROPERTIES='{"security.protocol": "SASL_SSL"}'`` (every client),
``KAFKA_PRODUCER_PROPERTIES='{"linger.ms": 50}'``,
``KAFKA_CONSUMER_PROPERTIES='{"session.timeout.ms": 6000}'``.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from streamwatch_common.settings import service_config

KafkaProperties = dict[str, str | int | float | bool]


# Client properties only librdkafka knows: Spark's Java Kafka client is not given them.
LIBRDKAFKA_ONLY = ("enable.sparse.connections", "metadata.recovery.rebootstrap.trigger.ms")
# librdkafka's default waits minutes before it bootstraps again from bootstrap.servers.
REBOOTSTRAP_AFTER_MS = 15_000


class KafkaSettings(BaseSettings):
    """Kafka connection settings; mix into a service's settings class."""

    model_config = service_config("")

    kafka_bootstrap_servers: str = Field(
        validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="Comma-separated `host:port` list of Kafka brokers (required).",
    )
    kafka_client_id: str = Field(
        default="streamwatch",
        validation_alias="KAFKA_CLIENT_ID",
        description="Client id sent to the brokers; shows up in broker logs and quotas.",
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None,
        validation_alias="KAFKA_SASL_PASSWORD",
        description="SASL password (from a Secret); set the mechanism and user in `KAFKA_PROPERTIES`.",
    )
    kafka_properties: KafkaProperties = Field(
        default_factory=dict,
        validation_alias="KAFKA_PROPERTIES",
        description="JSON object of extra librdkafka properties for every client.",
    )
    kafka_producer_properties: KafkaProperties = Field(
        default_factory=dict,
        validation_alias="KAFKA_PRODUCER_PROPERTIES",
        description="JSON object of extra librdkafka properties for producers only.",
    )
    kafka_consumer_properties: KafkaProperties = Field(
        default_factory=dict,
        validation_alias="KAFKA_CONSUMER_PROPERTIES",
        description="JSON object of extra librdkafka properties for consumers only (they override the"
        " observer's own default, `fetch.queue.backoff.ms` 20).",
    )

    def _base(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "client.id": self.kafka_client_id,
            # A producer that learnt "no leader" during a broker's controlled shutdown could stay away from
            # the broker once it was back: records in flight, no error, no metadata from any broker.
            # Persistent connections and a re-bootstrap after a short time without metadata bring such a
            # client back. One left holding no broker at all gets no such chance: the long-lived clients
            # replace themselves then (kafka_health; README, "Broker restarts and librdkafka").
            "enable.sparse.connections": False,
            "metadata.recovery.rebootstrap.trigger.ms": REBOOTSTRAP_AFTER_MS,
        }
        if self.kafka_sasl_password is not None:
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        config.update(self.kafka_properties)
        return config

    def admin_config(self) -> dict[str, Any]:
        """Configuration for an AdminClient or a metadata-only consumer."""
        return self._base()

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """Idempotent producer by default: a retried send is never written twice."""
        config = {"enable.idempotence": True, "acks": "all", **self._base()}
        config.update(self.kafka_producer_properties)
        config.update(overrides)
        return config

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        """Manual commits by default: services commit only after their output is durable."""
        config = {
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **self._base(),
        }
        config.update(self.kafka_consumer_properties)
        config.update(overrides)
        return config


class LibrdkafkaLog:
    """Pass as the ``logger`` client property: librdkafka's own lines become ``librdkafka_log`` events
    with ``facility``, ``client`` and ``detail`` fields, so a service's stdout stays one JSON object per
    line (otherwise librdkafka prints ``%3|...|FAIL|...`` to stderr).

    Usage::

        Producer({**settings.producer_config(), "logger": LibrdkafkaLog()})
    """

    def __init__(self, name: str = "librdkafka") -> None:
        self._logger = logging.getLogger(name)

    def log(self, level: int, fmt: str, *args: object) -> None:
        """Called by the client with ``("%s [%s] %s", facility, client name, message)``."""
        if len(args) == 3:
            fields = dict(zip(("facility", "client", "detail"), args, strict=True))
        else:
            fields = {"detail": fmt % args if args else fmt}
        self._logger.log(level, "librdkafka_log", extra=fields)
