"""Settings of the profile publisher (environment prefix ``PROFILE_PUBLISHER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from streamwatch_common.search import ElasticsearchSettings
from streamwatch_common.settings import ServiceSettings, service_config

MIB = 1024 * 1024


class ProfilePublisherSettings(ServiceSettings, ElasticsearchSettings):
    """Where reports are stored, who may upload them, how long they are kept and where they are indexed.

    The HTTP API, the index page, ``/healthz``, ``/readyz`` and ``/metrics`` share one port
    (``PROFILE_PUBLISHER_PORT``); ``OPS_HOST``/``OPS_PORT`` are not used by this service.
    """

    model_config = service_config("PROFILE_PUBLISHER_")

    # Optional here (required in the shared mixin): without it the publisher only stores and serves.
    elasticsearch_url: str | None = Field(  # type: ignore[assignment]
        default=None,
        validation_alias="ELASTICSEARCH_URL",
        description="Elasticsearch base URL; unset: report metadata is not indexed.",
    )

    host: str = Field(default="0.0.0.0", description="Address the HTTP server binds to.")
    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        description="Port of the API, the index page, the reports and `/healthz` `/readyz` `/metrics`.",
    )
    token: SecretStr = Field(
        description="Bearer token uploads must present (from a Secret; required).",
    )
    store_dir: Path = Field(
        default=Path("/data/reports"),
        description="Directory (a volume) holding the reports, their metadata and pending index updates.",
    )
    max_report_bytes: int = Field(
        default=16 * MIB,
        gt=0,
        description="Largest accepted report body in bytes; larger uploads are refused with 413.",
    )
    public_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://localhost:8000"),
        description="Base URL users reach the publisher at; makes `report_url` in Elasticsearch absolute.",
    )
    elasticsearch_index: str = Field(
        default="visits_profiles",
        min_length=1,
        description="Elasticsearch index of the report metadata (time field `@timestamp` = window end).",
    )
    retention_max_reports: int = Field(
        default=0, ge=0, description="Keep at most this many reports, oldest removed first; 0 = unlimited."
    )
    retention_max_age_days: float = Field(
        default=0, ge=0, description="Remove reports uploaded longer ago than this; 0 = unlimited."
    )
    retention_max_bytes: int = Field(
        default=0,
        ge=0,
        description="Keep at most this many bytes of reports, oldest removed first; 0 = no limit.",
    )
    retention_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often the age limit is applied (count and bytes: every upload)."
    )
    index_retry_seconds: float = Field(
        default=5.0,
        gt=0,
        description="First back-off after a failed Elasticsearch write (doubles up to 5 min).",
    )
    page_size: int = Field(
        default=50, ge=1, le=1000, description="Reports per page on the index page and in `/api/reports`."
    )
    shutdown_timeout_seconds: int = Field(
        default=30,
        ge=1,
        description="On SIGTERM, how long in-flight uploads may take to finish before the server stops.",
    )

    @field_validator("public_url")
    @classmethod
    def _no_query(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if value.query or value.fragment:
            raise ValueError("must be a base URL without query or fragment")
        return value

    def public_base(self) -> str:
        """The public URL without a trailing slash, ready to prepend ``/reports/<id>``."""
        return str(self.public_url).rstrip("/")
