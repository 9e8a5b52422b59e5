"""Settings of the visits writer (environment prefix ``VISITS_WRITER_``)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from streamwatch_common.kafka import KafkaSettings
from streamwatch_common.settings import CommaList, ServiceSettings, service_config
from streamwatch_common.spark.job_settings import SparkJobSettings
from streamwatch_common.visit_record import DEFAULT_REQUIRED_FIELDS


class VisitsWriterSettings(ServiceSettings, KafkaSettings, SparkJobSettings):
    """Kafka ``visits`` → Delta table, with dead letters and the micro-batch SLA listener."""

    model_config = service_config("VISITS_WRITER_")

    topic: str = Field(default="visits", description="Kafka topic the visits are read from.")
    max_records_per_trigger: int = Field(
        default=10000, gt=0, description="Upper bound of Kafka records read by one micro-batch."
    )
    trigger_interval_seconds: float = Field(
        default=10.0, ge=0, description="Processing-time trigger interval; 0 starts batches back to back."
    )
    checkpoint_path: str = Field(
        default="/data/checkpoints/visits-writer",
        description="Spark checkpoint directory; restarting from it neither skips nor repeats records.",
    )
    visits_table_path: str = Field(
        default="/data/delta/visits", description="Delta table of the parsed visits."
    )
    dead_letter_table_path: str = Field(
        default="/data/delta/visits_dead_letters",
        description="Delta table of the records that could not be parsed or lack required fields.",
    )
    required_fields: CommaList[str] = Field(
        default=list(DEFAULT_REQUIRED_FIELDS),
        description="Comma-separated visit fields (dotted for nested ones) that must be present and "
        "non-empty; a record without one goes to the dead-letter table.",
    )
    simulated_latency_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Sleep inside every micro-batch, to provoke SLA misses on purpose (the seed used 15).",
    )
    connector: Literal["python", "jvm"] = Field(
        default="python",
        description="`python`: Python Kafka source + delta-rs writer (no jars); `jvm`: Spark's "
        '`format("kafka")` and delta-spark `format("delta")` (needs `VISITS_WRITER_SPARK_JARS_DIR`).',
    )
    push_job: str = Field(
        default="visits_to_delta_synchronizer", description="`job` label of the pushed batch metrics."
    )

    @model_validator(mode="after")
    def _jvm_connector_has_jars(self) -> Self:
        self.require_jars(self.connector)
        return self
