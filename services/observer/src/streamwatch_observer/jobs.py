"""The Spark jobs whose lag the observer reports: the observed job (whose output topic it also observes)
and any number of watched jobs, declared by name, checkpoint location and source topic.

A watched job may be one the project did not write: any Structured Streaming query reading Kafka keeps
its source offsets in its checkpoint (``offsets/N`` and ``commits/N``), which is all the observer reads.
Its source partitions are reported by the replica that owns the observed topic's partition of the same
number modulo that topic's partition count (:func:`owner_of`), so every partition has one reporter
whatever the two topics' partition counts.

Usage::

    ObserverSettings(watched_jobs='[{"name": "sessions", "checkpoint": "s3://ckpt/sessions",'
                                   ' "source_topic": "visits"}]').jobs()
    # [LagJob(name="passthrough", ...), LagJob(name="sessions", ...)]
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streamwatch_common.object_store import check_location

# A job name is a metric label value and part of document ids: kept to what reads well in both.
JOB_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class LagJob(BaseModel):
    """One Spark job whose lag is reported: its name (the ``spark_job`` label and the documents' ``job``),
    where its checkpoint is, and the Kafka topic it reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=63, pattern=JOB_NAME_PATTERN)
    checkpoint: str = Field(min_length=1)
    source_topic: str = Field(min_length=1)

    @model_validator(mode="after")
    def _checkpoint_can_be_read(self) -> Self:
        # Checked here rather than by the field's type so that the refusal names the job.
        try:
            check_location(self.checkpoint)
        except ValueError as exc:
            raise ValueError(f"job {self.name!r}: checkpoint {exc}") from exc
        return self


def owner_of(source_partition: int, observed_partitions: int) -> int:
    """The observed topic's partition whose owner reports ``source_partition`` of a watched job."""
    return source_partition % observed_partitions
