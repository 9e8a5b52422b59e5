"""Settings of the passthrough (environment prefix ``PASSTHROUGH_``)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from streamwatch_common.kafka import KafkaSettings
from streamwatch_common.settings import ServiceSettings, service_config
from streamwatch_common.spark.job_settings import SparkJobSettings


class PassthroughSettings(ServiceSettings, KafkaSettings, SparkJobSettings):
    """Kafka ``visits`` → ``processed_visits``, byte for byte and partition for partition."""

    model_config = service_config("PASSTHROUGH_")

    source_topic: str = Field(default="visits", min_length=1, description="Topic the records are read from.")
    target_topic: str = Field(
        default="processed_visits",
        min_length=1,
        description="Topic the records are copied to; needs at least as many partitions as the source "
        "(record from partition *p* goes to partition *p*).",
    )
    checkpoint_path: str = Field(
        default="/checkpoint",
        description="Spark checkpoint directory (`offsets/N`, `commits/N`); the observer reads it for lag.",
    )
    max_records_per_trigger: int = Field(
        default=10000, ge=0, description="Upper bound of records read by one micro-batch; `0`: no bound."
    )
    trigger_interval_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Processing-time trigger interval; `0` starts batches back to back "
        "(an idle query then asks the broker for offsets continuously: ~10% of a core here).",
    )
    kafka_connector: Literal["python", "jvm"] = Field(
        default="python",
        description="`python`: the project's Python Kafka source (no jars); `jvm`: Spark's "
        '`format("kafka")` source and sink (needs `PASSTHROUGH_SPARK_JARS_DIR`).',
    )
    push_job: str = Field(default="passthrough", description="`job` label of the pushed batch metrics.")

    @model_validator(mode="after")
    def _jvm_connector_has_jars(self) -> Self:
        self.require_jars(self.kafka_connector)
        return self
