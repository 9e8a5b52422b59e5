"""Entry point of the observer: ``streamwatch-observer``."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from streamwatch_common.backoff import Backoff
from streamwatch_common.errors import SinkError
from streamwatch_common.kafka import LibrdkafkaLog
from streamwatch_common.object_store import CheckpointStore
from streamwatch_common.ops import OpsServer, Readiness
from streamwatch_common.service import fatal_errors, start_service
from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_observer import metrics
from streamwatch_observer.delivery import Destination, DirectoryDestination, PublisherDestination
from streamwatch_observer.lag import LagProbe
from streamwatch_observer.observer import Observer
from streamwatch_observer.profiler import Profiler
from streamwatch_observer.settings import ObserverSettings
from streamwatch_observer.sink import ObservationSink
from streamwatch_observer.writer import commit_result

logger = logging.getLogger(__name__)

_PROFILE_STOP_SECONDS = 30.0
_FIRST_BACKOFF = 0.5


def _destination(settings: ObserverSettings) -> Destination:
    if settings.profile_publisher_url:
        token = settings.profile_publisher_token
        return PublisherDestination(
            settings.profile_publisher_url,
            token=token.get_secret_value() if token is not None else None,
            replica=settings.replica_name,
            retries=settings.profile_publisher_retries,
            timeout=settings.profile_publisher_timeout_seconds,
        )
    return DirectoryDestination(Path(settings.profile_dir))


# librdkafka postpones a partition's next fetch by this much once its prefetch queue is over its
# thresholds (``queued.min.messages``, ``queued.max.messages.kbytes``). Its own default, a second, let a
# replica empty the queue and then wait with nothing to read for most of that second, about once per
# second at full speed; the user's ``KAFKA_CONSUMER_PROPERTIES`` still decide.
FETCH_QUEUE_BACKOFF = "fetch.queue.backoff.ms"
FETCH_QUEUE_BACKOFF_MS = 20


def consumer_config(settings: ObserverSettings) -> dict[str, Any]:
    """The observer consumer's configuration, all of it but the statistics its handle adds: librdkafka's
    own lines through logging (JSON, not stderr text), and the result of each asynchronous commit logged
    and counted."""
    return {
        FETCH_QUEUE_BACKOFF: FETCH_QUEUE_BACKOFF_MS,
        **settings.consumer_config(settings.group_id),
        "logger": LibrdkafkaLog(),
        "on_commit": commit_result,
    }


def _wait_for_template(sink: ObservationSink, shutdown: GracefulShutdown, max_backoff: float) -> bool:
    """Retry the index template until it is in place; False when shutdown came first."""
    backoff = Backoff(first=_FIRST_BACKOFF, maximum=max_backoff)
    while not shutdown.requested:
        try:
            sink.ensure_template()
            return True
        except SinkError as exc:
            metrics.SINK_FAILURES.labels("elasticsearch").inc()
            delay = backoff.next_delay()
            logger.warning("index_template_failed", extra={"error": str(exc), "retry_in_seconds": delay})
            shutdown.wait(delay)
    return False


def main() -> None:
    """Observe ``processed_visits`` per window until SIGTERM arrives; a fatal error exits 1."""
    settings, shutdown = start_service("observer", ObserverSettings)
    with fatal_errors("observer_failed"):
        run(settings, shutdown)


def run(settings: ObserverSettings, shutdown: GracefulShutdown) -> None:
    """Serve the ops endpoints, wait for the index template, then observe until shutdown."""
    readiness = Readiness()
    readiness.set("index_template", False)
    readiness.set("subscribed", False)
    # Stopped in the reverse order of starting, whatever happened in between (ExitStack).
    with ExitStack() as running:
        ops = OpsServer(settings.ops_host, settings.ops_port, ready=readiness).start()
        running.callback(logger.info, "service_stopped")
        running.callback(ops.stop)
        sink = ObservationSink(
            settings.elasticsearch_client(),
            settings.index,
            settings.required_fields,
            replicas=settings.elasticsearch_index_replicas,
        )
        if not _wait_for_template(sink, shutdown, settings.sink_max_backoff_seconds):
            return
        readiness.set("index_template", True)
        profiler = None
        if settings.profile_enabled:
            profiler = Profiler(_destination(settings), settings.profile_max_rows).start()
            running.callback(profiler.close, _PROFILE_STOP_SECONDS)
        probe, *watched = [
            LagProbe(
                {**settings.consumer_config(f"{settings.group_id}-lag-probe"), "logger": LibrdkafkaLog()},
                job.source_topic,
                CheckpointStore.open(job.checkpoint, settings),
                settings.lag_evaluation_window_seconds,
                job=job.name,
            )
            for job in settings.jobs()
        ]
        for each in (probe, *watched):
            running.callback(each.close)
        observer = Observer(
            settings=settings,
            shutdown=shutdown,
            consumer_config=consumer_config(settings),
            sink=sink,
            probe=probe,
            profiler=profiler,
            watched=watched,
        )
        readiness.check("subscribed", lambda: observer.subscribed)
        observer.run()


if __name__ == "__main__":
    main()
