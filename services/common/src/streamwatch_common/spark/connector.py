"""The connector of a Spark job: which implementation reads Kafka and writes the job's output.

The ``<PREFIX>_CONNECTOR`` setting names it (:data:`ConnectorName`); :func:`connector_from` turns that name
into the one object that holds every difference between the two, so no other module compares the name:

- ``python`` (:class:`PythonConnector`, the default): the project's Python Kafka source
  (:mod:`.kafka_source`) and confluent-kafka writer (:func:`.kafka_writer.kafka_batch_writer`), with
  librdkafka's client properties; no jars.
- ``jvm`` (:class:`JvmConnector`, opt-in): Spark's own ``format("kafka")`` source and sink, with the client
  properties in the Java client's terms (:mod:`.java_client`) and the jars of ``<PREFIX>_SPARK_JARS_DIR``
  as ``spark.jars``; settings that cannot run it stop the service at start.

Both write the same checkpoint. A job's own per-connector parts (the visits writer's classification and
Delta writer) are chosen once with :meth:`Connector.pick`.

Usage::

    connector = connector_from(settings.connector)
    stream = connector.read_stream(spark, options)
    write = connector.kafka_batch_writer("processed_visits", settings.producer_config())
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic_core import PydanticCustomError

from streamwatch_common.kafka import LIBRDKAFKA_ONLY
from streamwatch_common.settings import refuse
from streamwatch_common.spark.java_client import JavaClientConfigError, java_client_properties

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from streamwatch_common.spark.job_settings import SparkJobSettings

#: The values of the ``<PREFIX>_CONNECTOR`` setting.
ConnectorName = Literal["python", "jvm"]
#: A ``foreachBatch`` function that returns the number of records it wrote.
BatchWriter = Callable[["DataFrame", int], int]

_T = TypeVar("_T")

#: Spark's list of formats read and written through DataSource V1 ...
V1_SOURCES_CONF = "spark.sql.sources.useV1SourceList"
#: ... Spark 4.2's default without ``kafka`` (the ``jvm`` connector's session).
V1_SOURCES = "avro,csv,json,orc,parquet,text"


class Connector(ABC):
    """How a job reads Kafka, writes Kafka, and what its Spark session and settings need for that."""

    name: ClassVar[ConnectorName]

    @abstractmethod
    def client_properties(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` (librdkafka properties) as this connector's Kafka client takes them."""

    @abstractmethod
    def read_stream(self, spark: SparkSession, options: Mapping[str, str]) -> DataFrame:
        """The streaming DataFrame of Kafka records for ``options`` (Spark's Kafka option names)."""

    @abstractmethod
    def pick(self, *, python: _T, jvm: _T) -> _T:
        """This connector's one of a job's two implementations of something (chosen once, at start)."""

    def client_options(self, client_config: Mapping[str, Any], *, producer: bool = False) -> dict[str, str]:
        """Client properties as ``kafka.``-prefixed options, without the keys the connectors manage.

        Consumer-group keys are dropped for a reader: progress lives in the checkpoint, not in a group.
        Raises :class:`~streamwatch_common.spark.java_client.JavaClientConfigError` for a property the
        connector's client cannot be given.
        """
        managed = () if producer else ("group.id", "enable.auto.commit", "auto.offset.reset")
        config = {key: value for key, value in client_config.items() if key not in managed}
        return {f"kafka.{key}": option_text(value) for key, value in self.client_properties(config).items()}

    def kafka_batch_writer(
        self, topic: str, producer_config: Mapping[str, Any], keep_partition: bool = True
    ) -> BatchWriter:
        """A ``foreachBatch`` function writing columns ``key``, ``value`` (and ``partition``) to ``topic``:
        confluent-kafka's producer on ``python``, Spark's ``format("kafka")`` sink on ``jvm``."""
        from streamwatch_common.spark import kafka_writer

        write = self.pick(python=kafka_writer.kafka_batch_writer, jvm=kafka_writer.spark_kafka_batch_writer)
        return write(topic, producer_config, keep_partition)

    def session_conf(self, settings: SparkJobSettings) -> dict[str, str]:
        """Spark properties this connector needs in the job's session (none by default)."""
        return {}

    def check(self, settings: SparkJobSettings) -> None:
        """Raise a ValidationError naming the setting that keeps ``settings`` from running this connector.

        Run by the settings' model validator, so the service stops at start with one line naming the
        variable (exit 2) rather than failing at query start.
        """
        return None


class PythonConnector(Connector):
    """The project's Python Kafka source and confluent-kafka writer: librdkafka throughout, no jars."""

    name = "python"

    def client_properties(self, config: Mapping[str, Any]) -> dict[str, Any]:
        # The Python source is not given librdkafka's own consumer-wide properties either.
        return {key: value for key, value in config.items() if key not in LIBRDKAFKA_ONLY}

    def read_stream(self, spark: SparkSession, options: Mapping[str, str]) -> DataFrame:
        from streamwatch_common.spark.kafka_source import FORMAT_NAME, register_kafka_source

        register_kafka_source(spark)
        return spark.readStream.format(FORMAT_NAME).options(**options).load()

    def pick(self, *, python: _T, jvm: _T) -> _T:
        return python


class JvmConnector(Connector):
    """Spark's own ``format("kafka")`` source and sink (the Java client), given the jars as ``spark.jars``."""

    name = "jvm"

    def client_properties(self, config: Mapping[str, Any]) -> dict[str, Any]:
        # Raises JavaClientConfigError for a property the Java client cannot be given.
        return java_client_properties(config)

    def read_stream(self, spark: SparkSession, options: Mapping[str, str]) -> DataFrame:
        # Canonical Spark Kafka source; needs org.apache.spark:spark-sql-kafka-0-10 on the classpath.
        return spark.readStream.format("kafka").options(**options).load()

    def pick(self, *, python: _T, jvm: _T) -> _T:
        return jvm

    def session_conf(self, settings: SparkJobSettings) -> dict[str, str]:
        """``spark.jars``: local files, nothing resolved at query start; Kafka off the V1 source list, so a
        batch written to Kafka takes the DataSource V2 path, where the sink's writer can count what it
        writes in the same pass (:func:`.kafka_writer.spark_kafka_batch_writer`)."""
        return {"spark.jars": ",".join(settings.jar_files()), V1_SOURCES_CONF: V1_SOURCES}

    def check(self, settings: SparkJobSettings) -> None:
        """The jars must be there, and the Kafka properties must translate to the Java client's."""
        if not settings.jar_files():
            where = f"no *.jar in {settings.spark_jars_dir}" if settings.spark_jars_dir else "not set"
            error = PydanticCustomError(
                "jvm_connector_jars",
                "the jvm connector needs Spark's connector jars "
                "({where}; run make deps: .ci/install-deps.sh)",
                {"where": where},
            )
            refuse(settings, error, "spark_jars_dir", settings.spark_jars_dir)
        try:
            self.client_properties(settings.consumer_config(group_id="settings-check"))
            self.client_properties(settings.producer_config())
        except JavaClientConfigError as exc:
            error = PydanticCustomError("java_client_properties", "{problem}", {"problem": str(exc)})
            refuse(settings, error, "kafka_properties", settings.kafka_properties, cause=exc)


_CONNECTORS: dict[str, Connector] = {c.name: c for c in (PythonConnector(), JvmConnector())}
PYTHON = _CONNECTORS["python"]
JVM = _CONNECTORS["jvm"]


def connector_from(name: ConnectorName) -> Connector:
    """The connector the ``<PREFIX>_CONNECTOR`` setting names."""
    return _CONNECTORS[name]


def option_text(value: Any) -> str:
    """A Spark option's text for a client property or option value (booleans in lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
