"""Settings every Spark streaming job shares: source, query, Spark resources, the metrics push.

A job's settings class subclasses :class:`SparkJobSettings`; the fields take that class's environment
prefix, so both jobs spell each shared setting the same way (``VISITS_WRITER_CONNECTOR`` and
``PASSTHROUGH_CONNECTOR``, ``VISITS_WRITER_SOURCE_TOPIC`` and ``PASSTHROUGH_SOURCE_TOPIC``...). A job keeps
its own default for what differs (checkpoint path, trigger interval, push job label) with
:func:`job_default`, which keeps the shared description and constraints.

Usage::

    class PassthroughSettings(SparkJobSettings):
        model_config = service_config("PASSTHROUGH_")
        checkpoint_path: str = job_default("checkpoint_path", "/checkpoint")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from streamwatch_common.kafka import KafkaSettings
from streamwatch_common.object_store import ObjectStoreSettings, StoreLocation, on_object_store
from streamwatch_common.settings import ServiceSettings, refuse, service_config
from streamwatch_common.spark.class_archive import use_options
from streamwatch_common.spark.connector import Connector, ConnectorName, connector_from
from streamwatch_common.spark.kubernetes import ExecutorSettings

_SPARK_MIN_DRIVER_MEMORY = 450 * 2**20
_UNITS = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


class SparkJobSettings(ServiceSettings, KafkaSettings, ObjectStoreSettings, ExecutorSettings):
    """Source and query of a streaming job, Spark master, memory caps, Pushgateway target and labels."""

    model_config = service_config("")

    # Which implementation reads Kafka and writes the job's output (both write the same checkpoint); the
    # object behind the name is kafka_connector.
    connector: ConnectorName = Field(
        default="python",
        description="`python`: the project's Python Kafka source and the job's Python writer (Kafka "
        'producer, delta-rs), no jars; `jvm`: Spark\'s `format("kafka")` source and the JVM writer '
        "(Spark's Kafka sink, delta-spark), which needs the jars of `<prefix>SPARK_JARS_DIR`.",
    )
    source_topic: str = Field(default="visits", min_length=1, description="Kafka topic the job reads.")
    checkpoint_path: StoreLocation = Field(
        default="/checkpoint",
        description="Spark checkpoint directory (`offsets/N`, `commits/N`); restarting from it neither "
        "skips nor repeats a committed batch. A path, or `s3a://bucket/prefix` (or `s3://`) on "
        "S3-compatible storage through hadoop-aws (`S3_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`...; the jars of "
        "`<prefix>S3A_JARS_DIR`).",
    )
    max_records_per_trigger: int = Field(
        default=10000,
        ge=0,
        description="Upper bound of Kafka records read by one micro-batch; `0`: no bound.",
    )
    trigger_interval_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Processing-time trigger interval; `0` starts batches back to back (an idle query "
        "then asks the broker for offsets continuously: ~10% of a core here).",
    )
    # No shared default: each job sets its own label with job_default (the alert rules match on it).
    push_job: str = Field(min_length=1, description="`job` label of the pushed batch metrics.")
    starting_offsets: str = Field(
        default="earliest",
        description="Where a query without checkpoint starts: `earliest`, `latest` or offsets JSON "
        '`{"visits": {"0": 42}}`. Ignored once the checkpoint exists.',
    )
    spark_driver_memory: str = Field(
        default="512m",
        pattern=r"^[0-9]+[kmgtKMGT]?$",
        description="`spark.driver.memory`: the JVM heap (`-Xmx`) in local mode; Spark refuses less than "
        "450m. 512m holds 25k-record batches (the JVM then peaks at ~500 MiB RSS).",
    )
    # C1 only (-XX:TieredStopAtLevel=1) for both jobs: with the records kept out of the JVM (the
    # passthrough's in-source copy, the visits writer's spilled batches) little JVM code is hot enough to
    # repay C2, whose compiler threads had taken most of the JVM's CPU (the jobs' READMEs have the numbers).
    spark_driver_java_options: str = Field(
        default="-XX:+UseSerialGC -XX:ReservedCodeCacheSize=64m -XX:MaxDirectMemorySize=256m -Xss512k "
        "-XX:TieredStopAtLevel=1",
        description="`spark.driver.extraJavaOptions`: the serial collector and smaller code cache and "
        "thread stacks cut the JVM's off-heap memory (one streaming job needs no parallel GC); "
        "`-XX:TieredStopAtLevel=1` compiles with C1 only, which costs the JVM less CPU when records do not "
        "pass through it (drop it for long runs of the `jvm` connector).",
    )
    spark_class_archive: str | None = Field(
        default=None,
        description="Class-data-sharing archive of the driver's classes, made by "
        "`streamwatch-spark-class-archive PATH` with this Java and these Spark jars: the driver JVM maps "
        "Spark's classes from it instead of loading them from the jars, which takes seconds off every "
        "start of the session and of its first query. An archive that does not match the JVM is left out "
        "with a `[cds]` warning in the log; unset: none.",
    )
    spark_jars_dir: str | None = Field(
        default=None,
        description="Directory of Spark's JVM connector jars (spark-sql-kafka, delta-spark and their "
        "dependencies, resolved ahead by `.ci/maven-libs.sh`), given to Spark as `spark.jars` on the `jvm` "
        "connector only; the `jvm` connector refuses to start without a jar there. The images set it to "
        "`/opt/spark-jars`.",
    )
    s3a_jars_dir: str | None = Field(
        default=None,
        description="Directory of hadoop-aws and the AWS SDK modules it uses (resolved ahead by "
        "`.ci/maven-libs.sh`), given to Spark as `spark.jars` when the checkpoint (or a table of the "
        "job's) is on object storage; such a job refuses to start without a jar there. The images set it "
        "to `/opt/spark-jars/s3a`.",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description='JSON object of extra Spark properties, e.g. `{"spark.sql.shuffle.partitions": "4"}`; '
        "applied last, so it overrides the settings above.",
    )
    stop_timeout_seconds: float = Field(
        default=40.0,
        gt=0,
        description="On SIGTERM, how long to wait for the running micro-batch to finish and be committed "
        "before stopping anyway (it is then written again after the restart). Keep it 20 s below the "
        "pod's `terminationGracePeriodSeconds` (60 in the chart): Spark needs the rest to shut down.",
    )
    commit_group: str | None = Field(
        default=None,
        min_length=1,
        description="Kafka consumer group to which each batch's end offsets are committed once the batch is "
        "committed in the checkpoint, so `kafka-consumer-groups.sh`, Burrow, kafka-lag-exporter and KEDA see "
        "the job's lag (Spark itself commits none). The job never joins the group and never resumes from "
        "it. The group must be the job's alone: offsets someone else committed there stop the commits "
        "(`group_commit_refused`); unset: nothing is committed.",
    )
    pushgateway_url: str | None = Field(
        default=None,
        description="Pushgateway base URL, e.g. `http://pushgateway:9091`; unset: no pushes.",
    )
    push_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Timeout of one push; a slow Pushgateway never slows the job more."
    )
    instance: str | None = Field(
        default=None,
        description="`instance` grouping label of the pushed metrics, one value for every pod of the job, so "
        "that a new pod takes the group over and nothing a gone pod pushed stays behind (the chart sets "
        "`<namespace>/<deployment>`; the pod name is the `pod` label); unset: the `push_job`.",
    )

    @property
    def instance_name(self) -> str:
        """The grouping label actually used: never the pod name, which changes with every pod and left
        every replaced pod's last values on the Pushgateway for the alerts to judge."""
        return self.instance or self.push_job

    @property
    def kafka_connector(self) -> Connector:
        """The object behind :attr:`connector`: the source, the Kafka sink, and what they need."""
        return connector_from(self.connector)

    def spark_locations(self) -> list[str]:
        """What Spark itself reads and writes: the checkpoint, and a job's own (the visits writer's tables
        when delta-spark writes them)."""
        return [self.checkpoint_path]

    @property
    def uses_object_store(self) -> bool:
        """Whether one of :meth:`spark_locations` is on object storage, which Spark reaches through S3A."""
        return any(on_object_store(location) for location in self.spark_locations())

    def s3a_jar_files(self) -> list[str]:
        """The ``*.jar`` files in :attr:`s3a_jars_dir`, sorted (empty when unset or missing)."""
        return _jars_in(self.s3a_jars_dir)

    def object_store_conf(self) -> dict[str, str]:
        """Spark properties of a job keeping state on object storage (none otherwise): hadoop-aws's jars
        and S3A's connection. The credentials stay in the environment, where S3A's default chain reads
        them, so no secret is ever a Spark property (which Spark's UI and logs show)."""
        if not self.uses_object_store:
            return {}
        conf = {
            "spark.jars": ",".join(self.s3a_jar_files()),
            # s3:// is S3A too, as on EMR and Databricks.
            "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
            "spark.hadoop.fs.s3a.endpoint.region": self.s3_region,
        }
        if self.s3_endpoint_url:
            # An S3-compatible store answers on its own host, buckets in the path.
            conf["spark.hadoop.fs.s3a.endpoint"] = self.s3_endpoint_url
            conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
        return conf

    @model_validator(mode="after")
    def _object_store_jars(self) -> Self:
        if self.uses_object_store and not self.s3a_jar_files():
            where = f"no *.jar in {self.s3a_jars_dir}" if self.s3a_jars_dir else "not set"
            error = PydanticCustomError(
                "s3a_jars",
                "a checkpoint or table on object storage needs hadoop-aws's jars ({where}; run make deps)",
                {"where": where},
            )
            refuse(self, error, "s3a_jars_dir", self.s3a_jars_dir)
        return self

    @model_validator(mode="after")
    def _connector_is_usable(self) -> Self:
        # The jvm connector's jars and Java client properties: a ValidationError naming the variable.
        self.kafka_connector.check(self)
        return self

    def jar_files(self) -> list[str]:
        """The ``*.jar`` files in :attr:`spark_jars_dir`, sorted (empty when unset or missing)."""
        return _jars_in(self.spark_jars_dir)

    @property
    def driver_java_options(self) -> str:
        """The driver's Java options: :attr:`spark_driver_java_options`, then the class archive's."""
        if not self.spark_class_archive:
            return self.spark_driver_java_options
        return f"{self.spark_driver_java_options} {use_options(self.spark_class_archive)}".strip()

    def spark_session_conf(self, **job_conf: str) -> dict[str, str]:
        """Spark properties on top of the shared session defaults: memory caps, the connector's jars, the
        executor pods', the job's own, then the user's."""
        connector, store = self.kafka_connector.session_conf(self), self.object_store_conf()
        jars = [j for part in (connector, store) for j in part.get("spark.jars", "").split(",") if j]
        conf = {
            "spark.driver.memory": self.spark_driver_memory,
            "spark.driver.extraJavaOptions": self.driver_java_options,
            # One Python worker per task slot, kept for the next batch instead of forked again.
            "spark.python.worker.reuse": "true",
            **connector,
            **store,
            **self.kubernetes_conf(),
        }
        if jars:
            conf["spark.jars"] = ",".join(jars)
        conf.update(job_conf)
        conf.update(self.spark_conf)
        return conf

    @field_validator("spark_class_archive")
    @classmethod
    def _archive_is_a_file(cls, value: str | None) -> str | None:
        # The JVM would only warn and start slowly: a path that names nothing is a mistake to say at once.
        if value and not Path(value).is_file():
            raise ValueError("no such file (make it with streamwatch-spark-class-archive PATH)")
        return value

    @field_validator("spark_driver_memory")
    @classmethod
    def _at_least_spark_minimum(cls, value: str) -> str:
        # Spark reserves 300 MiB and wants 1.5x that: below it the JVM starts and then refuses to run.
        unit = value[-1].lower()
        size = int(value[:-1]) * _UNITS[unit] if unit in _UNITS else int(value)
        if size < _SPARK_MIN_DRIVER_MEMORY:
            raise ValueError("Spark needs at least 450m")
        return value


def _jars_in(directory: str | None) -> list[str]:
    """The ``*.jar`` files in ``directory``, sorted (empty when unset or missing)."""
    if not directory or not Path(directory).is_dir():
        return []
    return sorted(str(p) for p in Path(directory).glob("*.jar"))


def job_default(name: str, default: Any) -> Any:
    """The shared field ``name`` with a job's own default (description and constraints unchanged).

    Typed ``Any`` like pydantic's ``Field``, so it can stand as the default of an annotated field.
    """
    return FieldInfo.merge_field_infos(SparkJobSettings.model_fields[name], default=default)
