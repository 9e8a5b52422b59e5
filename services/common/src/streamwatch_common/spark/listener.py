"""Micro-batch SLA listener: hands what every batch reports to the job's Pushgateway group.

Pushed per micro-batch: gauges (one group per ``job`` + ``instance``, replaced on every push) and a
histogram of every batch's duration, under the names of a ``BatchMetricNames``
(:mod:`streamwatch_common.spark.batch_metric_names`). How the group is pushed, taken over by a new pod
(the listener does it when a query starts) and told apart from the pod that pushed is
:mod:`streamwatch_common.spark.pushgateway_group`. The visits writer keeps the seed's names
(``VISITS_SYNC``, ``visits_sync_duration`` in milliseconds, what the SLA alert reads); every other job
pushes the job-neutral ``STREAMING_BATCH`` names (``streaming_batch_duration_seconds`` ...), told apart by
the ``job`` label, so a second job never shows up as the visits synchronizer. What a batch reports, and
how a part of a progress that cannot be read is treated, is :mod:`streamwatch_common.spark.batch_metrics`;
such a part is logged here (``progress_unreadable``) and counted in
``streamwatch_progress_unreadable_total{job, part}``, and everything else of the batch is still pushed.

While the query is idle (no new data) only the idle heartbeat (Unix time) is added to the group, which
refreshes ``push_time_seconds`` so an idle job is not mistaken for a stalled one. Spark (4.2,
``ProgressReporter.updateIdleness``) posts ``onQueryIdle`` for an idle trigger once
``spark.sql.streaming.noDataProgressEventInterval`` (10 s by default) has passed since the last batch or
the last idle event, and never for the very first idle trigger of a run: that interval is the
heartbeat's period, and the first heartbeat comes one interval after the query goes idle.

A progress reaches Python as one JSON text (:func:`progress_from_json`): pyspark's own conversion
(``StreamingQueryProgress.fromJObject``) reads it field by field over Py4J, about 450 round trips per batch
(some 50 ms of CPU in the JVM and the driver, measured with a one-source query), where the JSON text and the
batch's two exact rates are three.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from prometheus_client import Counter
from pyspark.sql.streaming.listener import (
    JStreamingQueryListener,
    QueryProgressEvent,
    StreamingQueryListener,
    StreamingQueryProgress,
)

from streamwatch_common.settings import pod_name
from streamwatch_common.spark.batch_metric_names import (
    DURATION_BUCKETS_SECONDS,
    STREAMING_BATCH,
    BatchMetricNames,
    duration_buckets,
)
from streamwatch_common.spark.batch_metrics import PROGRESS_PARTS, BatchMetrics, source_metrics
from streamwatch_common.spark.pushgateway_group import PUSH_FAILURES, PushgatewayGroup

if TYPE_CHECKING:
    from streamwatch_common.spark.job_settings import SparkJobSettings

logger = logging.getLogger(__name__)

# A Py4J reference to a JVM object (py4j has no type information).
JavaObject = Any

PROGRESS_UNREADABLE = Counter(
    "streamwatch_progress_unreadable_total",
    "Parts of a micro-batch progress that could not be read and were left out of the push, by part.",
    ["job", "part"],
)

PROGRESS_JSON_FALLBACKS = Counter(
    "streamwatch_progress_json_fallbacks_total",
    "Micro-batch progresses whose JSON text could not be read, read field by field over Py4J instead.",
    ["job"],
)


# Rates: Spark's progress JSON rounds them to one decimal and leaves out NaN and infinity
# (``safeDoubleToJValue``).
_RATES = ("inputRowsPerSecond", "processedRowsPerSecond")


def progress_from_json(jprogress: JavaObject) -> StreamingQueryProgress:
    """A ``StreamingQueryProgress`` from the JVM's progress, read as its JSON text: three Py4J round trips
    where pyspark's ``fromJObject`` makes hundreds.

    The batch's two rates (pushed) are read from the JVM object itself, as ``fromJObject`` reads them; a
    source's rate the JSON leaves out (NaN or infinite) too. A source's rates are otherwise the JSON's
    (one decimal); the listener pushes none of them."""
    data = json.loads(jprogress.json())
    for key in _RATES:
        data[key] = float(getattr(jprogress, key)())
    jsources = None
    for index, source in enumerate(data.get("sources", [])):
        for key in _RATES:
            if key not in source:
                jsources = jprogress.sources() if jsources is None else jsources
                source[key] = float(getattr(jsources[index], key)())
    return StreamingQueryProgress.fromJson(data)


class _ProgressAsJson(JStreamingQueryListener):
    """pyspark's Java-facing listener adapter, but the progress event is read through
    :func:`progress_from_json`; the other events as pyspark reads them (they are rare)."""

    def __init__(self, pylistener: BatchMetricsPusher) -> None:
        super().__init__(pylistener)
        self.job = pylistener.job

    def onQueryProgress(self, jevent: JavaObject) -> None:
        jprogress = jevent.progress()
        try:
            progress = progress_from_json(jprogress)
        except (KeyError, TypeError, ValueError) as exc:
            # A progress JSON of another shape (another Spark version): the slow way, and say so.
            PROGRESS_JSON_FALLBACKS.labels(job=self.job).inc()
            logger.warning("progress_json_unreadable", extra={"job": self.job, "error": repr(exc)})
            progress = StreamingQueryProgress.fromJObject(jprogress)
        self.pylistener.onQueryProgress(QueryProgressEvent(progress))


class BatchMetricsPusher(StreamingQueryListener):
    """A ``StreamingQueryListener`` that pushes each micro-batch's metrics to a Pushgateway.

    Pushing happens on a daemon thread of its own (a :class:`PushgatewayGroup`): the listener callback
    only hands over the newest metrics, so a slow or unreachable Pushgateway costs the job nothing, and
    each push gives up after ``timeout`` seconds. A failed push is logged and counted, never raised.

    Usage (the visits writer pushes :data:`VISITS_SYNC` names, the passthrough the default ones)::

        pusher = BatchMetricsPusher("http://pushgateway:9091", job="passthrough",
                                    instance="streamwatch/sw-streamwatch-passthrough", pod=pod_name,
                                    timeout=2.0, names=STREAMING_BATCH)  # observation="visits_quality"
        spark.streams.addListener(pusher)
        ...
        spark.streams.removeListener(pusher)
        pusher.close()  # pushes what is still pending (bounded by the timeout), stops the thread
    """

    def __init__(
        self,
        pushgateway_url: str,
        job: str,
        instance: str,
        timeout: float = 2.0,
        *,
        names: BatchMetricNames = STREAMING_BATCH,
        observation: str | None = None,
        pod: str | None = None,
        buckets: Sequence[float] = DURATION_BUCKETS_SECONDS,
    ) -> None:
        super().__init__()
        self._jlistener_json: JavaObject | None = None
        self.job = job
        # The DataFrame.observe name whose values are pushed as names.observed_null_values.
        self.observation = observation
        self.group = PushgatewayGroup(
            pushgateway_url, job, instance, timeout, names=names, pod=pod, buckets=buckets
        )
        for part in PROGRESS_PARTS:
            PROGRESS_UNREADABLE.labels(job=job, part=part)  # export 0 from the start
        PROGRESS_JSON_FALLBACKS.labels(job=job)

    @property
    def _jlistener(self) -> JavaObject:
        """The JVM side of this listener (what ``spark.streams.addListener`` registers): pyspark's wrapper
        around :class:`_ProgressAsJson` instead of around its own adapter; the same object every time."""
        if self._jlistener_json is None:
            from pyspark import SparkContext

            jvm = SparkContext._jvm
            assert jvm is not None, "no SparkContext: start the session before adding the listener"
            self._jlistener_json = jvm.PythonStreamingQueryListenerWrapper(_ProgressAsJson(self))
        return self._jlistener_json

    # --- listener callbacks (Spark's listener thread: never block here) --------------------------
    def onQueryStarted(self, event: Any) -> None:
        logger.info("listener_query_started", extra={"query_id": str(event.id), "job": self.job})
        self.group.take_over()

    def onQueryProgress(self, event: Any) -> None:
        try:
            metrics = BatchMetrics.from_progress(event.progress, self.observation)
        except Exception:
            # Spark would swallow it silently inside the listener bus; make it visible instead.
            PUSH_FAILURES.labels(job=self.job).inc()
            logger.exception("batch_metrics_unreadable", extra={"job": self.job})
            return
        for problem in metrics.unreadable:
            PROGRESS_UNREADABLE.labels(job=self.job, part=problem.part).inc()
            logger.warning(
                "progress_unreadable",
                extra={
                    "job": self.job,
                    "batch_id": metrics.batch_id,
                    "part": problem.part,
                    "detail": problem.detail,
                },
            )
        self._log_progress(metrics, event.progress)
        self.submit(metrics)

    def _log_progress(self, metrics: BatchMetrics, progress: Any) -> None:
        """One ``batch_progress`` line per batch: what is pushed of the sources and the observation, and
        the sources' own metrics beside it (Spark's Kafka source reports its offsets behind latest)."""
        behind = metrics.behind_latest
        sources = getattr(progress, "sources", None) or []
        reported = [source_metrics(source) for source in sources]
        logger.info(
            "batch_progress",
            extra={
                "job": self.job,
                "batch_id": metrics.batch_id,
                "input_rows": metrics.input_rows,
                "end_offsets": {f"{t}/{p}": o for (t, p), o in sorted(metrics.end_offsets.items())},
                "offsets_behind_latest": None
                if behind is None
                else {"min": behind.min, "avg": behind.avg, "max": behind.max},
                "source_metrics": reported,
                "observed": dict(metrics.observed),
            },
        )

    def onQueryIdle(self, event: Any) -> None:
        logger.debug("listener_query_idle", extra={"job": self.job})
        self.group.heartbeat()

    def onQueryTerminated(self, event: Any) -> None:
        logger.info(
            "listener_query_terminated",
            extra={"query_id": str(event.id), "job": self.job, "exception": event.exception},
        )

    # --- API ------------------------------------------------------------------------------------
    def submit(self, metrics: BatchMetrics) -> None:
        """Queue ``metrics`` for pushing; a not yet pushed older batch is replaced (newest wins), and
        still counted in the duration histogram."""
        self.group.submit(metrics)

    def close(self, timeout: float | None = None) -> None:
        """Push what is pending, then stop the pushing thread (waits at most ``timeout`` seconds)."""
        self.group.close(timeout)


class PusherOptions(TypedDict, total=False):
    """What a job may choose of its pusher (:meth:`StreamingJob.listener_options`): the names pushed
    under, the ``DataFrame.observe`` name whose values are pushed, the SLA as a histogram bucket bound."""

    names: BatchMetricNames
    observation: str | None
    sla_seconds: float | None


def attach_batch_metrics(
    spark: Any, settings: SparkJobSettings, job: str, **options: Unpack[PusherOptions]
) -> BatchMetricsPusher | None:
    """Push every micro-batch's metrics under ``job`` and ``names`` (and the values of the observation
    ``observation``, if any; ``sla_seconds`` a bound of the duration histogram) when the job has a
    Pushgateway URL, else nothing."""
    pusher = batch_metrics_pusher(settings, job, **options)
    if pusher is not None:
        spark.streams.addListener(pusher)
    return pusher


def batch_metrics_pusher(
    settings: SparkJobSettings,
    job: str,
    names: BatchMetricNames = STREAMING_BATCH,
    *,
    observation: str | None = None,
    sla_seconds: float | None = None,
) -> BatchMetricsPusher | None:
    """The pusher :func:`attach_batch_metrics` attaches: the job's one group (``settings.instance_name``,
    the same for every pod) and this pod's name (``HOSTNAME``) as the ``pod`` label; None without a
    Pushgateway URL."""
    if not settings.pushgateway_url:
        return None
    return BatchMetricsPusher(
        settings.pushgateway_url,
        job=job,
        instance=settings.instance_name,
        timeout=settings.push_timeout_seconds,
        names=names,
        observation=observation,
        pod=pod_name(),
        buckets=duration_buckets(sla_seconds),
    )


def detach_batch_metrics(spark: Any, pusher: BatchMetricsPusher | None) -> None:
    """Undo :func:`attach_batch_metrics`: stop listening and let the last push finish."""
    if pusher is not None:
        spark.streams.removeListener(pusher)
        pusher.close()
