"""Settings of the visits writer (environment prefix ``VISITS_WRITER_``)."""

from __future__ import annotations

from pydantic import Field

from streamwatch_common.object_store import StoreLocation
from streamwatch_common.settings import CommaList, service_config
from streamwatch_common.spark.job_settings import SparkJobSettings, job_default
from streamwatch_common.visit_record import DEFAULT_REQUIRED_FIELDS


class VisitsWriterSettings(SparkJobSettings):
    """Kafka ``visits`` → Delta table, with dead letters and the micro-batch SLA listener.

    The source, query, Spark and push settings are the shared ones of :class:`SparkJobSettings`.
    """

    model_config = service_config("VISITS_WRITER_")

    checkpoint_path: str = job_default("checkpoint_path", "/data/checkpoints/visits-writer")
    trigger_interval_seconds: float = job_default("trigger_interval_seconds", 10.0)
    push_job: str = job_default("push_job", "visits_to_delta_synchronizer")
    visits_table_path: StoreLocation = Field(
        default="/data/delta/visits",
        description="Delta table of the parsed visits: a path, or `s3a://bucket/prefix` (or `s3://`) on "
        "S3-compatible storage, as the checkpoint (delta-rs commits there with conditional puts, which "
        "the store must support: AWS S3, SeaweedFS and MinIO do).",
    )
    dead_letter_table_path: StoreLocation = Field(
        default="/data/delta/visits_dead_letters",
        description="Delta table of the records that could not be parsed or lack required fields (a path "
        "or an object-store URL, as the visits table).",
    )
    required_fields: CommaList[str] = Field(
        default=list(DEFAULT_REQUIRED_FIELDS),
        description="Comma-separated visit fields (dotted for nested ones) that must be present and "
        "non-empty; a record without one goes to the dead-letter table.",
    )
    sla_seconds: float | None = Field(
        default=None,
        gt=0,
        description="The batch duration this job is held to: a bound of the pushed "
        "`visits_sync_batch_seconds` histogram's buckets, so the share of batches over it is exact "
        "(the chart sets it from `alerts.slaMiss.thresholdMs`); unset: the default bounds only.",
    )
    observe_null_counts: bool = Field(
        default=False,
        description="Count, per micro-batch and inside Spark's plan (`DataFrame.observe`, observation "
        "`visits_quality`), the parsed records whose required field is null or blank, and push them as "
        "`visits_sync_observed_null_values{field}` with the batch metrics. Off by default: it parses every "
        "record a second time, with Spark's `from_json`.",
    )

    def spark_locations(self) -> list[str]:
        # delta-rs (the python connector) reaches the tables itself; delta-spark goes through S3A.
        tables = self.kafka_connector.pick(
            python=[], jvm=[self.visits_table_path, self.dead_letter_table_path]
        )
        return [*super().spark_locations(), *tables]

    simulated_latency_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Sleep inside every micro-batch, to provoke SLA misses on purpose (the seed used 15).",
    )
