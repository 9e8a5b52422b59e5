"""Settings of the passthrough (environment prefix ``PASSTHROUGH_``)."""

from __future__ import annotations

from pydantic import Field

from streamwatch_common.settings import service_config
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
