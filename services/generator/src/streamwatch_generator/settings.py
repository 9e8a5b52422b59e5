"""Settings of the generator: rate, size, reproducibility, composition of bad rows, partition skew."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from streamwatch_common.kafka import KafkaSettings
from streamwatch_common.settings import CommaList, ServiceSettings, service_config

RequiredField = Literal["event_time", "user_id", "page"]
REQUIRED_FIELDS: tuple[RequiredField, ...] = ("event_time", "user_id", "page")


class GeneratorSettings(ServiceSettings, KafkaSettings):
    """Everything the generator reads from the environment (prefix ``GENERATOR_``)."""

    model_config = service_config("GENERATOR_")

    topic: str = Field(default="visits", min_length=1, description="Topic the visits are produced to.")
    rate: float = Field(
        default=100.0, ge=0, description="Records per second; `0` produces as fast as the broker takes them."
    )
    total: int = Field(
        default=0, ge=0, description="Records to produce before exiting; `0` produces until SIGTERM."
    )
    exit_when_done: bool = Field(
        default=True,
        description="Exit once `GENERATOR_TOTAL` records are delivered; `false` keeps serving `/metrics`"
        " until SIGTERM (a Deployment is then not restarted into a second run).",
    )
    seed: int | None = Field(
        default=None,
        description="Random seed; the same seed, start and settings give byte-identical records."
        " Unset: a random seed, logged at start.",
    )
    event_time_start: datetime | None = Field(
        default=None,
        description="ISO 8601 event time of the first record; record *i* gets start + *i* * step."
        " Unset: each record carries the wall-clock time it was made (not reproducible).",
    )
    event_time_step_ms: int = Field(
        default=100, ge=0, description="Event-time distance between consecutive records when a start is set."
    )
    missing_fields_percent: float = Field(
        default=5.0, ge=0, le=100, description="Share of rows with required fields set to null."
    )
    missing_fields: CommaList[RequiredField] = Field(
        default=list(REQUIRED_FIELDS),
        min_length=1,
        description="Comma-separated required fields that missing-field rows may null"
        " (each such row nulls a random non-empty subset): `event_time`, `user_id`, `page`.",
    )
    duplicate_percent: float = Field(
        default=2.0,
        ge=0,
        le=100,
        description="Share of rows that re-send an earlier valid record (same bytes, key and partition).",
    )
    unparseable_percent: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="Share of rows whose value is not valid JSON (a truncated record).",
    )
    skew_partition: int | None = Field(
        default=None, ge=0, description="Partition that gets skewed traffic; unset: records spread evenly."
    )
    skew_mode: Literal["more", "pause"] = Field(
        default="more",
        description="`more`: the skew partition gets `GENERATOR_SKEW_SHARE_PERCENT` of the records;"
        " `pause`: it gets nothing after `GENERATOR_SKEW_PAUSE_AFTER` records.",
    )
    skew_share_percent: float = Field(
        default=50.0, ge=0, le=100, description="Share of all records sent to the skew partition (`more`)."
    )
    skew_pause_after: int = Field(
        default=100, ge=0, description="Records the skew partition receives before it pauses (`pause`)."
    )
    shift_after_records: int | None = Field(
        default=None,
        ge=0,
        description="From this record on (counted from 0) `GENERATOR_SHIFT_FIELD` is drawn from a different"
        " frequency table, to make drift on purpose. Unset: no shift.",
    )
    shift_field: Literal["page", "browser"] = Field(
        default="page",
        description="Field shifted from `GENERATOR_SHIFT_AFTER_RECORDS` on: `page` (mostly `contact.html`)"
        " or `browser` (mostly `Safari`).",
    )
    progress_interval_seconds: float = Field(
        default=10.0, gt=0, description="Seconds between two `generator_progress` log lines."
    )
    flush_timeout_seconds: float = Field(
        default=30.0, gt=0, description="How long shutdown waits for in-flight records to be delivered."
    )
    delivery_stall_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Seconds with records in flight and no delivery report before `delivery_stalled` is"
        " logged (again every such period while it lasts).",
    )
    topic_wait_seconds: float = Field(
        default=2.0, gt=0, description="Pause between two metadata look-ups while the topic does not exist."
    )

    @field_validator("unparseable_percent")
    @classmethod
    def _composition_fits(cls, value: float, info: ValidationInfo) -> float:
        # Validated on the last composition field so the error line names a real variable.
        others = (info.data.get("missing_fields_percent") or 0) + (info.data.get("duplicate_percent") or 0)
        if value + others > 100:
            raise ValueError("missing-field, duplicate and unparseable percentages add up to more than 100")
        return value
