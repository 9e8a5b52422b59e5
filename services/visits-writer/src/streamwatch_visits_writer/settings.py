"""Settings of the visits writer (environment prefix ``VISITS_WRITER_``)."""

from __future__ import annotations

import os
import socket
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from streamwatch_common.kafka import KafkaSettings
from streamwatch_common.settings import ServiceSettings, service_config

_SPARK_MIN_DRIVER_MEMORY = 450 * 2**20


class VisitsWriterSettings(ServiceSettings, KafkaSettings):
    """Kafka ``visits`` → Delta table, with dead letters and the micro-batch SLA listener."""

    model_config = service_config("VISITS_WRITER_")

    topic: str = Field(default="visits", description="Kafka topic the visits are read from.")
    starting_offsets: str = Field(
        default="earliest",
        description="Where a query without checkpoint starts: `earliest`, `latest` or offsets JSON "
        '`{"visits": {"0": 42}}`. Ignored once the checkpoint exists.',
    )
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
    required_fields: Annotated[list[str], NoDecode] = Field(
        default=["event_time", "user_id", "page"],
        description="Comma-separated top-level visit fields that must be present and non-empty; "
        "a record without one goes to the dead-letter table.",
    )
    simulated_latency_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Sleep inside every micro-batch, to provoke SLA misses on purpose (the seed used 15).",
    )
    spark_master: str = Field(default="local[*]", description="Spark master URL.")
    spark_driver_memory: str = Field(
        default="512m",
        pattern=r"^[0-9]+[kmgtKMGT]?$",
        description="`spark.driver.memory`: the JVM heap (`-Xmx`) in local mode; Spark refuses less than "
        "450m. 512m holds 25k-record batches (the JVM then peaks at ~500 MiB RSS).",
    )
    spark_driver_java_options: str = Field(
        default="-XX:+UseSerialGC -XX:ReservedCodeCacheSize=64m -XX:MaxDirectMemorySize=256m -Xss512k",
        description="`spark.driver.extraJavaOptions`: the serial collector and smaller code cache and "
        "thread stacks cut the JVM's off-heap memory (one streaming job needs no parallel GC).",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description='JSON object of extra Spark properties, e.g. `{"spark.sql.shuffle.partitions": "4"}`; '
        "applied last, so it overrides the settings above.",
    )
    connector: Literal["python", "jvm"] = Field(
        default="python",
        description="`python`: Python Kafka source + delta-rs writer (no jars); `jvm`: Spark's "
        '`format("kafka")` and delta-spark `format("delta")` (the image must bake the jars).',
    )
    pushgateway_url: str | None = Field(
        default=None,
        description="Pushgateway base URL, e.g. `http://pushgateway:9091`; unset: no pushes.",
    )
    push_job: str = Field(
        default="visits_to_delta_synchronizer", description="`job` label of the pushed batch metrics."
    )
    push_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Timeout of one push; a slow Pushgateway never slows the job more."
    )
    instance: str | None = Field(
        default=None,
        description="`instance` grouping label of the pushed metrics; unset: `HOSTNAME` (the pod name).",
    )

    @property
    def instance_name(self) -> str:
        """The grouping label actually used: Kubernetes sets ``HOSTNAME`` to the pod name."""
        return self.instance or os.environ.get("HOSTNAME") or socket.gethostname()

    @field_validator("spark_driver_memory")
    @classmethod
    def _at_least_spark_minimum(cls, value: str) -> str:
        # Spark reserves 300 MiB and wants 1.5x that: below it the JVM starts and then refuses to run.
        units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
        unit = value[-1].lower()
        size = int(value[:-1]) * units[unit] if unit in units else int(value)
        if size < _SPARK_MIN_DRIVER_MEMORY:
            raise ValueError("Spark needs at least 450m")
        return value

    @field_validator("required_fields", mode="before")
    @classmethod
    def _split_fields(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
