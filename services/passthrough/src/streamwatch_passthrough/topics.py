"""Start-up check that the target topic can take every source partition's records at the same index."""

from __future__ import annotations

import logging

from confluent_kafka.admin import AdminClient
from prometheus_client import Counter

from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_passthrough.settings import PassthroughSettings

logger = logging.getLogger(__name__)

TOPIC_CHECK_FAILURES = Counter(
    "passthrough_topic_check_failures_total", "Start-up checks that found a topic missing or too small."
)
_RETRY_SECONDS = 5.0


def partition_problem(source: int | None, target: int | None) -> str | None:
    """Why records of partition *p* could not go to partition *p*, or None when they can."""
    if source is None:
        return "source topic does not exist"
    if target is None:
        return "target topic does not exist"
    if target < source:
        return f"target topic has {target} partitions, fewer than the source's {source}"
    return None


def wait_for_topics(settings: PassthroughSettings, shutdown: GracefulShutdown) -> bool:
    """Block until both topics exist with aligned partitions; False if shutdown came first.

    Waiting rather than exiting lets the job start before the topic operator has created its topics.
    """
    admin = AdminClient(settings.admin_config())
    while not shutdown.requested:
        counts: dict[str, int | None] = {}
        problem: str | None
        try:
            meta = admin.list_topics(timeout=10)
            for name in (settings.source_topic, settings.target_topic):
                topic = meta.topics.get(name)
                ok = topic is not None and topic.error is None
                counts[name] = len(topic.partitions) if ok and topic is not None else None
            problem = partition_problem(counts[settings.source_topic], counts[settings.target_topic])
        except Exception as exc:  # noqa: BLE001 - broker not reachable yet: report and retry
            problem = f"metadata request failed: {exc!r}"
        if problem is None:
            logger.info("topics_checked", extra={"partitions": counts})
            return True
        TOPIC_CHECK_FAILURES.inc()
        logger.warning(
            "topics_not_ready",
            extra={
                "problem": problem,
                "source_topic": settings.source_topic,
                "target_topic": settings.target_topic,
                "retry_seconds": _RETRY_SECONDS,
            },
        )
        shutdown.wait(_RETRY_SECONDS)
    return False
