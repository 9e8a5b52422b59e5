"""Settings of the observer: topics, windows, quality fields, lag source, sinks and profiling."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from streamwatch_common.kafka import KafkaSettings
from streamwatch_common.object_store import ObjectStoreSettings, StoreLocation
from streamwatch_common.search import ElasticsearchSettings
from streamwatch_common.settings import CommaList, ServiceSettings, pod_name, refuse, service_config
from streamwatch_common.visit_record import DEFAULT_REQUIRED_FIELDS, ID_FIELD
from streamwatch_observer.jobs import LagJob


class ObserverSettings(ServiceSettings, KafkaSettings, ElasticsearchSettings, ObjectStoreSettings):
    """Everything the observer reads from the environment (prefix ``OBSERVER_``)."""

    model_config = service_config("OBSERVER_")

    topic: str = Field(
        default="processed_visits", min_length=1, description="Topic observed (the passthrough's output)."
    )
    source_topic: str = Field(
        default="visits",
        min_length=1,
        description="Topic the passthrough reads; its newest offsets are compared with the checkpoint.",
    )
    group_id: str = Field(
        default="streamwatch-observer",
        min_length=1,
        description="Consumer group shared by all observer replicas (partitions are spread among them).",
    )
    job: str = Field(
        default="passthrough",
        min_length=1,
        description="Name of the observed streaming job; part of every document id and profile name.",
    )
    replica: str | None = Field(
        default=None,
        description="Name of this replica in documents and profiles; unset: `HOSTNAME` (the pod name).",
    )
    checkpoint_path: StoreLocation = Field(
        default="/checkpoint",
        description="The passthrough's Spark checkpoint: a directory (mounted read-only), `file:///path`, or "
        "`s3://bucket/prefix` on S3-compatible storage (`S3_ENDPOINT_URL`, credentials in "
        "`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`).",
    )
    watched_jobs: list[LagJob] = Field(
        default=[],
        description="Other Spark jobs whose lag, status and lag seconds are reported beside the observed"
        " job's, each under its own `spark_job` label and `job` in the lag documents: a JSON list of"
        ' `{"name": ..., "checkpoint": ..., "source_topic": ...}` (checkpoint as `checkpoint_path`; one'
        " object store, that of `S3_ENDPOINT_URL`, for all). Any Structured Streaming query reading Kafka"
        " can be one, whoever wrote it.",
    )

    window_records: int = Field(
        default=10000, ge=1, description="A partition's window closes after this many records..."
    )
    window_seconds: float = Field(
        default=60.0, gt=0, description="...or this many seconds after its first record, whichever is first."
    )
    required_fields: CommaList[str] = Field(
        default=list(DEFAULT_REQUIRED_FIELDS),
        min_length=1,
        description="Comma-separated fields downstream consumers need; each gets an `invalid_<field>` count.",
    )
    id_field: str = Field(
        default=ID_FIELD,
        min_length=1,
        description="Field whose repeats within a window are duplicates (a null or blank id is none).",
    )
    max_reported_fields: int = Field(
        default=100,
        ge=1,
        description="Most fields whose null counts a window reports one by one (required fields always);"
        " guards the index mapping and metric labels against records with arbitrary keys.",
    )
    drift_min_records: int = Field(
        default=200,
        ge=1,
        description="Parsed records a window needs for a drift score against the partition's previous"
        " window (smaller windows are too noisy: their score is left out and they are no reference).",
    )
    drift_reference_windows: int = Field(
        default=5,
        ge=0,
        description="Windows (each with at least `drift_min_records` parsed records) merged into a"
        " partition's pinned drift reference; every later window is also scored against it, which catches"
        " a slow drift the window-to-window score misses. Kept in Elasticsearch (`<index>_drift_reference`)"
        " across rebalances and restarts. 0: no reference.",
    )
    drift_reference_name: str = Field(
        default="initial",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name of the pinned drift reference (letters, digits, `_`, `.`, `-`; part of its"
        " document id). A new name pins a new reference from the next `drift_reference_windows` windows of"
        " each partition; the old one stays stored, and switching back to its name uses it again.",
    )
    index: str = Field(
        default="visits_observation_stats",
        min_length=1,
        description="Elasticsearch index of the observation documents (time field `@timestamp`).",
    )
    lag_interval_seconds: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between two lag measurements; also the time bucket of lag document ids.",
    )
    lag_evaluation_window_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Sliding window over which each partition's lag is judged after Burrow's rules"
        " (ok, warn, stall, stop, rewind); several lag intervals long, and at least twice the observed"
        " job's trigger interval, or a slow trigger reads as a stall or a stop.",
    )
    # The client makes a whole call's records into Python objects without letting go of the interpreter
    # lock, and the measuring thread waits for that lock between its steps: smaller calls let it in sooner
    # (in `make bench`'s observer case a few hundred records a call measured fastest, the bench README).
    consume_batch: int = Field(
        default=500, ge=1, description="Most records taken from the consumer in one call."
    )
    sink_max_backoff_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest pause between two attempts to write to Elasticsearch (retries never give up).",
    )
    pending_lag_documents: int = Field(
        default=1000,
        ge=1,
        description="Lag documents kept while Elasticsearch is unreachable; the oldest are dropped beyond.",
    )
    profile_enabled: bool = Field(
        default=True, description="Make a ydata-profiling report per window (merged when profiling lags)."
    )
    profile_max_rows: int = Field(default=10000, ge=1, description="Rows sampled into one profile report.")
    profile_dir: str = Field(
        default="profiles",
        description="Directory the HTML reports are written to when no profile publisher URL is set.",
    )
    profile_publisher_url: str | None = Field(
        default=None,
        description="Base URL of the profile publisher; when set, reports are POSTed there instead of files.",
    )
    profile_publisher_token: SecretStr | None = Field(
        default=None, description="Bearer token sent to the profile publisher (from a Secret)."
    )
    profile_publisher_retries: int = Field(
        default=3, ge=0, description="Retries of one report delivery before it is counted as failed."
    )
    profile_publisher_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of one report delivery request."
    )

    @model_validator(mode="after")
    def _evaluation_window_holds_samples(self) -> Self:
        # Fewer than two lag measurements per window leave nothing to compare: stall and warn could never
        # be judged, and the operator would read "ok" as a verdict.
        if self.lag_evaluation_window_seconds >= 2 * self.lag_interval_seconds:
            return self
        error = PydanticCustomError(
            "lag_evaluation_window",
            "must be at least twice OBSERVER_LAG_INTERVAL_SECONDS ({interval})",
            {"interval": self.lag_interval_seconds},
        )
        refuse(self, error, "lag_evaluation_window_seconds", self.lag_evaluation_window_seconds)

    @model_validator(mode="after")
    def _job_names_apart(self) -> Self:
        # A name is the series' and the documents' identity: two jobs under one would overwrite each other.
        names = [self.job, *(job.name for job in self.watched_jobs)]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if not repeated:
            return self
        error = PydanticCustomError(
            "job_names", "job names must differ, {names} given twice", {"names": ", ".join(repeated)}
        )
        refuse(self, error, "watched_jobs", names)

    def jobs(self) -> list[LagJob]:
        """Every job whose lag is reported: the observed job first, then the watched ones."""
        # Not validated again: its checkpoint was checked as `checkpoint_path`, and its name (`job`) keeps
        # the looser rule it always had, which a watched job's pattern would refuse at run time.
        observed = LagJob.model_construct(
            name=self.job, checkpoint=self.checkpoint_path, source_topic=self.source_topic
        )
        return [observed, *self.watched_jobs]

    @property
    def replica_name(self) -> str:
        """The replica name actually used: Kubernetes sets ``HOSTNAME`` to the pod name."""
        return pod_name(self.replica)
