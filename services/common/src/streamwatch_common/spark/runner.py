"""One lifecycle for every streamwatch Spark streaming job: readiness, session, listener, query, stop, exit.

A job supplies only what is its own, as a :class:`StreamingJob`: a check before Spark starts (tables,
topics), its Spark properties, what it keeps of the Kafka stream and its ``foreachBatch`` function.
:func:`run_streaming_job` does the rest the same way for each job:

- the ops server, ``/readyz`` true while the query is active;
- the Spark session (shared memory caps, the connector's jars, the job's and the user's properties) and the
  batch-metrics listener (:mod:`streamwatch_common.spark.listener`);
- the query: the Kafka stream of the job's connector (:mod:`streamwatch_common.spark.connector`),
  ``foreachBatch`` behind a :class:`BatchGate`, the checkpoint, the processing-time trigger;
- a loop until SIGTERM/SIGINT or until the query ends, then the one stop mechanism,
  :func:`~streamwatch_common.spark.graceful_stop.stop_gracefully`: the running batch finishes and is
  committed before the query stops, a later batch is refused before it writes.

Exit codes: :data:`EXIT_OK` after a requested stop, :data:`EXIT_FAILED` when the start-up or the query
fails; 2 stays reserved for bad settings (:data:`streamwatch_common.settings.EXIT_BAD_SETTINGS`).

Usage::

    class Copy(StreamingJob):
        app_name, query_name, query_failures = "streamwatch-passthrough", "passthrough", QUERY_FAILURES

        def write_batch(self, batch_df: DataFrame, batch_id: int) -> None: ...

    raise SystemExit(run_streaming_job(Copy(settings), shutdown))
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from prometheus_client import Counter, Gauge

from streamwatch_common.ops import OpsServer
from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_common.spark.executor_watch import ExecutorWatch
from streamwatch_common.spark.graceful_stop import BatchGate, stop_gracefully
from streamwatch_common.spark.job_settings import SparkJobSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
# How often the loop looks at the query; a stop request ends the wait at once.
_POLL_SECONDS = 1.0


class StreamingJob(ABC):
    """What one Spark streaming job adds to the shared lifecycle of :func:`run_streaming_job`.

    Subclasses set the class attributes and implement :meth:`write_batch`; the other hooks default to
    doing nothing.
    """

    #: Spark application name.
    app_name: ClassVar[str]
    #: Name of the streaming query (Spark UI, logs).
    query_name: ClassVar[str]
    #: The job's count of failures at start-up or by a query error.
    query_failures: ClassVar[Counter]
    #: Set to 1 while the query runs, 0 otherwise (optional).
    query_active: ClassVar[Gauge | None] = None

    def __init__(self, settings: SparkJobSettings) -> None:
        self.settings = settings
        #: The job's connector, chosen once from its settings: the Kafka source, sink, and session needs.
        self.connector = settings.kafka_connector

    def prepare(self, shutdown: GracefulShutdown) -> bool:
        """Before Spark starts (create tables, wait for topics). False: a stop came first, exit cleanly.

        Raise to fail the start-up (logged, counted, exit 1).
        """
        return True

    def spark_conf(self) -> dict[str, str]:
        """Spark properties of this job only; the runner adds the shared ones and the user's."""
        return {}

    def listener_options(self) -> dict[str, Any]:
        """Extra keyword arguments of :func:`~streamwatch_common.spark.listener.attach_batch_metrics`
        for this job (none by default): how the batch-metrics listener is built is the job's choice."""
        return {}

    def select(self, stream: DataFrame) -> DataFrame:
        """What the job keeps of the Kafka stream (``key, value, topic, partition, offset, timestamp``)."""
        return stream

    def stream(self, spark: SparkSession, options: dict[str, str]) -> DataFrame:
        """The streaming DataFrame the query runs for the source ``options``: by default the connector's
        Kafka stream through :meth:`select` (a job may read another format with the same options)."""
        from streamwatch_common.spark.kafka_stream import read_kafka_stream

        return self.select(read_kafka_stream(spark, self.connector, options))

    @abstractmethod
    def write_batch(self, batch_df: DataFrame, batch_id: int) -> None:
        """The ``foreachBatch`` function: write one micro-batch (it passes through the batch gate)."""

    def query_started(self, query: StreamingQuery) -> None:
        """Called once the query runs (its first batch may already be writing); by default nothing."""
        return None


class _FirstBatch:
    """A job's ``foreachBatch`` function that stops Spark's idle Python planning daemons at the first call
    (:mod:`~streamwatch_common.spark.python_planners`): Spark planned the query's reads before it, so from
    then on they only hold memory. A job on the ``jvm`` connector has none and nothing is stopped."""

    def __init__(self, write: Callable[[DataFrame, int], None], job: str) -> None:
        self.write = write
        self.job = job
        self.first = True

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        if self.first:
            from streamwatch_common.spark.python_planners import stop_planner_daemons

            self.first = False
            stop_planner_daemons(batch_df.sparkSession, self.job)
        self.write(batch_df, batch_id)


class _Readiness:
    """What ``/readyz`` looks at: the query, once started, and whether it is still active; with executor
    pods, that one at least is running."""

    query: StreamingQuery | None = None
    executors: ExecutorWatch | None = None

    def __call__(self) -> bool:
        active = self.query is not None and self.query.isActive
        return active and (self.executors is None or self.executors.ready())


def run_streaming_job(job: StreamingJob, shutdown: GracefulShutdown) -> int:
    """Run ``job`` until SIGTERM/SIGINT (:data:`EXIT_OK`) or until it fails (:data:`EXIT_FAILED`)."""
    settings = job.settings
    readiness = _Readiness()
    ops = OpsServer(settings.ops_host, settings.ops_port, ready=readiness).start()
    try:
        if not job.prepare(shutdown):
            return EXIT_OK
        return _run_query(job, shutdown, readiness)
    except Exception:
        # Spark failing to start, a bad starting-offsets value, an unreadable checkpoint or table path.
        job.query_failures.inc()
        logger.exception(
            "job_failed", extra={"app_name": job.app_name, "checkpoint_path": settings.checkpoint_path}
        )
        return EXIT_FAILED
    finally:
        ops.stop()


def _run_query(job: StreamingJob, shutdown: GracefulShutdown, readiness: _Readiness) -> int:
    from streamwatch_common.spark.group_commit import attach_group_commit, detach_group_commit
    from streamwatch_common.spark.listener import attach_batch_metrics, detach_batch_metrics
    from streamwatch_common.spark.session import start_job_session

    settings = job.settings
    spark = start_job_session(job.app_name, settings, **job.spark_conf())
    pusher = committer = None
    try:
        if shutdown.requested:  # SIGTERM while the JVM was starting
            return EXIT_OK
        if settings.executors:
            readiness.executors = ExecutorWatch(spark, settings.executors, settings.push_job)
            readiness.executors.poll()
        pusher = attach_batch_metrics(spark, settings, settings.push_job, **job.listener_options())
        if pusher is None:
            logger.warning("pushgateway_disabled", extra={"reason": "no PUSHGATEWAY_URL setting"})
        committer = attach_group_commit(spark, settings, settings.push_job)
        gate = BatchGate()
        query = _start_query(spark, job, gate)
        readiness.query = query
        job.query_started(query)
        logger.info(
            "query_started",
            extra={
                "query_id": str(query.id),
                "run_id": str(query.runId),
                "checkpoint_path": settings.checkpoint_path,
                "connector": settings.connector,
            },
        )
        return _watch(job, query, gate, shutdown, readiness.executors)
    finally:
        _set_active(job, False)
        detach_batch_metrics(spark, pusher)
        detach_group_commit(spark, committer)
        spark.stop()
        logger.info("job_stopped", extra={"app_name": job.app_name})


def _start_query(spark: SparkSession, job: StreamingJob, gate: BatchGate) -> StreamingQuery:
    from streamwatch_common.spark.kafka_stream import kafka_stream_options

    settings = job.settings
    options = kafka_stream_options(
        # The group id is dropped: progress lives in the checkpoint, not in a consumer group.
        settings.consumer_config(group_id=job.query_name),
        settings.source_topic,
        starting_offsets=settings.starting_offsets,
        max_offsets_per_trigger=settings.max_records_per_trigger or None,
        connector=job.connector,
    )
    stream = job.stream(spark, options)
    # Both connectors write from foreachBatch, so the one batch gate serves either.
    writer = (
        stream.writeStream.queryName(job.query_name)
        .foreachBatch(gate.guard(_FirstBatch(job.write_batch, settings.push_job)))
        .option("checkpointLocation", settings.checkpoint_path)
    )
    if settings.trigger_interval_seconds > 0:
        writer = writer.trigger(processingTime=f"{settings.trigger_interval_seconds} seconds")
    return writer.start()


def _watch(
    job: StreamingJob,
    query: StreamingQuery,
    gate: BatchGate,
    shutdown: GracefulShutdown,
    executors: ExecutorWatch | None = None,
) -> int:
    """Wait for a stop request or the query's end; stop between batches; the exit code."""
    while not shutdown.wait(_POLL_SECONDS):
        if not query.isActive:
            break
        _set_active(job, True)
        if executors is not None:
            executors.poll()
    _set_active(job, False)
    if shutdown.requested:
        # The batch that is writing finishes and is committed in the checkpoint before the query stops;
        # only after a stop timeout is it written again on restart.
        if stop_gracefully(query, gate, job.settings.stop_timeout_seconds) is not None:
            job.query_failures.inc()
        return EXIT_OK
    job.query_failures.inc()
    logger.error("query_failed", extra={"query_id": str(query.id), "error": str(query.exception())})
    return EXIT_FAILED


def _set_active(job: StreamingJob, active: bool) -> None:
    if job.query_active is not None:
        job.query_active.set(1 if active else 0)
