"""Elasticsearch connection settings and client, shared by the observer and the profile publisher.

Requires the ``search`` extra (``elasticsearch>=8,<9``: a 9.x client is refused by an 8.x server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from streamwatch_common.settings import service_config

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch


class ElasticsearchSettings(BaseSettings):
    """Connection to Elasticsearch 8; mix into a service's settings class."""

    model_config = service_config("")

    elasticsearch_url: str = Field(
        validation_alias="ELASTICSEARCH_URL",
        description="Elasticsearch base URL, e.g. `https://elasticsearch:9200` (required).",
    )
    elasticsearch_username: str | None = Field(
        default=None,
        validation_alias="ELASTICSEARCH_USERNAME",
        description="Basic-auth user, if security is on.",
    )
    elasticsearch_password: SecretStr | None = Field(
        default=None,
        validation_alias="ELASTICSEARCH_PASSWORD",
        description="Basic-auth password (from a Secret).",
    )
    elasticsearch_ca_certs: str | None = Field(
        default=None,
        validation_alias="ELASTICSEARCH_CA_CERTS",
        description="Path to the CA bundle that signed the cluster's certificate (HTTPS).",
    )
    elasticsearch_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        validation_alias="ELASTICSEARCH_TIMEOUT_SECONDS",
        description="Timeout of one request; bounded so a slow cluster causes back-pressure, not a hang.",
    )
    elasticsearch_index_replicas: int | None = Field(
        default=None,
        ge=0,
        validation_alias="ELASTICSEARCH_INDEX_REPLICAS",
        description="`number_of_replicas` of the index the service creates, also set on it when it exists; "
        "`0` on a single node, which can place no replica (the index would stay yellow); unset: the "
        "cluster's default (1).",
    )

    def elasticsearch_client(self) -> Elasticsearch:
        """A client with bounded timeouts; retries are the caller's job (they decide what to commit)."""
        from elasticsearch import Elasticsearch

        auth = None
        if self.elasticsearch_username and self.elasticsearch_password is not None:
            auth = (self.elasticsearch_username, self.elasticsearch_password.get_secret_value())
        extra: dict[str, Any] = {}
        if self.elasticsearch_ca_certs:
            extra["ca_certs"] = self.elasticsearch_ca_certs
        return Elasticsearch(
            self.elasticsearch_url,
            basic_auth=auth,
            **extra,
            request_timeout=self.elasticsearch_timeout_seconds,
            max_retries=0,
            retry_on_timeout=False,
        )


def index_replicas_settings(replicas: int | None) -> dict[str, Any]:
    """``{"number_of_replicas": n}`` for an index's settings, or nothing for the cluster's default."""
    return {} if replicas is None else {"number_of_replicas": replicas}
