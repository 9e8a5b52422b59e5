"""Settings of the passthrough (environment prefix ``PASSTHROUGH_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from streamwatch_common.settings import service_config
from streamwatch_common.spark.connector import PYTHON
from streamwatch_common.spark.job_settings import SparkJobSettings, job_default


class PassthroughSettings(SparkJobSettings):
    """Kafka ``visits`` → ``processed_visits``, byte for byte and partition for partition.

    The source, query, Spark and push settings are the shared ones of :class:`SparkJobSettings`.
    """

    model_config = service_config("PASSTHROUGH_")

    push_job: str = job_default("push_job", "passthrough")
    target_topic: str = Field(
        default="processed_visits",
        min_length=1,
        description="Topic the records are copied to; needs at least as many partitions as the source "
        "(record from partition *p* goes to partition *p*).",
    )
    copy_path: Literal["source_tasks", "spark_rows"] | None = Field(
        default=None,
        description="How a micro-batch is copied. `source_tasks` (the default on the `python` connector): "
        "each read task of the Python source consumes its planned offset range and produces it to the "
        "target itself, handing Spark only a count; the records never become Spark rows. `spark_rows` (the "
        "`jvm` connector's only path): the records become Spark rows and a `foreachBatch` writer produces "
        "them (confluent-kafka on `python`, Spark's Kafka sink on `jvm`). Unset: the connector's default; "
        "`source_tasks` with the `jvm` connector stops the job at start.",
    )

    @field_validator("copy_path")
    @classmethod
    def _fits_the_connector(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The connector is validated first (fields in definition order): a bad one has no value here.
        connector = info.data.get("connector")
        if value == "source_tasks" and connector is not None and connector != PYTHON.name:
            raise ValueError(f"source_tasks needs the python connector, not {connector}")
        return value

    @property
    def copies_in_source_tasks(self) -> bool:
        """Whether the Python source's read tasks copy the records (:attr:`copy_path`, resolved)."""
        resolved = self.copy_path or ("source_tasks" if self.connector == PYTHON.name else "spark_rows")
        return resolved == "source_tasks"
