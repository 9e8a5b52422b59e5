"""A Spark job's progress as the committed offsets of a Kafka consumer group, so that Kafka's own tools see
its lag.

Spark keeps a Kafka source's progress in its checkpoint and commits nothing to Kafka (SPARK-27549), so
``kafka-consumer-groups.sh``, Burrow, kafka-lag-exporter and KEDA's Kafka scaler cannot see a Spark job.
With a group named (``<prefix>COMMIT_GROUP``), each batch's end offsets are committed to that group once
Spark posts the batch's progress, which it does after the batch is committed in the checkpoint. They are
committed through the admin API: the job never joins the group, and the checkpoint stays the only thing
Spark resumes from. The group's lag is then the topic's end minus the job's last committed batch, the
observer's lag of the job, one batch later at most (a batch's progress comes after it is committed).

Every commit carries its owner, the job and its checkpoint, as the offsets' metadata. Before each commit
the group's committed offsets are read: an offset committed by anything else (another job given the same
group, or a consumer of that name) means the group's lag would be nobody's; committing stops for the rest
of the run, logged once (``group_commit_refused``) and counted. A commit that fails (a broker away, a group
with members) is logged, counted and tried again after a back-off with the newest offsets.

Counted on the process's ``/metrics`` (label ``job``): ``streamwatch_group_commits_total``,
``streamwatch_group_commit_failures_total{reason}`` (``kafka``: the request failed; ``shared_group``: the
group holds another owner's offsets; ``progress``: a batch's progress had no readable end offsets).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import Counter
from pyspark.sql.streaming.listener import StreamingQueryListener

from streamwatch_common.backoff import Backoff
from streamwatch_common.spark.batch_metrics import BatchMetrics

if TYPE_CHECKING:
    from streamwatch_common.spark.job_settings import SparkJobSettings

logger = logging.getLogger(__name__)

GROUP_COMMITS = Counter(
    "streamwatch_group_commits_total",
    "Batches whose end offsets were committed to the job's consumer group.",
    ["job"],
)
GROUP_COMMIT_FAILURES = Counter(
    "streamwatch_group_commit_failures_total",
    "Commits of a batch's end offsets to the job's consumer group that failed or were refused, by reason.",
    ["job", "reason"],
)
REASON_KAFKA = "kafka"
REASON_SHARED = "shared_group"
REASON_PROGRESS = "progress"
_REASONS = (REASON_KAFKA, REASON_SHARED, REASON_PROGRESS)

# (topic, partition) -> the offset of the next record the job reads
EndOffsets = Mapping[tuple[str, int], int]


def owner_metadata(job: str, checkpoint: str) -> str:
    """The metadata every offset the job commits carries: what tells its commits from anyone else's."""
    return json.dumps({"spark_job": job, "checkpoint": checkpoint}, sort_keys=True, separators=(",", ":"))


class GroupCommitter:
    """Commits the newest end offsets it is given to ``group`` on a daemon thread of its own, so a slow or
    unreachable broker costs the caller nothing (newest wins); ``timeout`` bounds each admin request.

    Usage::

        committer = GroupCommitter(settings.admin_config(), "spark-passthrough", job="passthrough",
                                   checkpoint="/checkpoint", timeout=10)
        committer.submit({("visits", 0): 120, ("visits", 1): 98})
        committer.close()  # commits what is pending (bounded by the timeout), stops the thread
    """

    def __init__(
        self, admin_config: dict[str, Any], group: str, *, job: str, checkpoint: str, timeout: float
    ) -> None:
        self.group = group
        self.job = job
        self.owner = owner_metadata(job, checkpoint)
        self.timeout = timeout
        self.refused = False
        self._admin = AdminClient(admin_config)
        self._backoff = Backoff(first=1.0, maximum=30.0)
        self._lock = threading.Condition()
        self._pending: dict[tuple[str, int], int] | None = None
        self._closed = False
        GROUP_COMMITS.labels(job=job)  # export 0 from the start
        for reason in _REASONS:
            GROUP_COMMIT_FAILURES.labels(job=job, reason=reason)
        self._thread = threading.Thread(target=self._run, name=f"group-commit-{job}", daemon=True)
        self._thread.start()

    def submit(self, offsets: EndOffsets) -> None:
        """Queue ``offsets`` for committing; a not yet committed older batch is replaced."""
        with self._lock:
            self._pending = dict(offsets)
            self._lock.notify()

    def close(self, timeout: float | None = None) -> None:
        """Commit what is pending, then stop the thread (waits at most ``timeout`` seconds)."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(2 * self.timeout + 1 if timeout is None else timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._lock.wait()
                if self._pending is None:  # closed with nothing left
                    return
                offsets, self._pending = self._pending, None
                closed = self._closed
            if self.refused or self._commit(offsets):
                continue
            if closed:  # one last try only: close() is bounded
                return
            with self._lock:
                if self._pending is None:  # nothing newer came: try these again
                    self._pending = offsets
                # Newer offsets or close() end the wait early.
                self._lock.wait(self._backoff.next_delay())

    def _commit(self, offsets: dict[tuple[str, int], int]) -> bool:
        """One commit; False when it should be tried again."""
        try:
            foreign = self._foreign_offsets()
            if foreign:
                self._refuse(foreign)
                return True
            request = ConsumerGroupTopicPartitions(
                self.group,
                [TopicPartition(t, p, o, metadata=self.owner) for (t, p), o in sorted(offsets.items())],
            )
            answer = self._admin.alter_consumer_group_offsets([request])[self.group].result(self.timeout)
            failed = [tp for tp in answer.topic_partitions if tp.error is not None]
            if failed:
                raise KafkaException(failed[0].error)
        except KafkaException as exc:
            GROUP_COMMIT_FAILURES.labels(job=self.job, reason=REASON_KAFKA).inc()
            logger.warning(
                "group_commit_failed",
                extra={"job": self.job, "group": self.group, "error": str(exc.args[0] if exc.args else exc)},
            )
            return False
        self._backoff.reset()
        GROUP_COMMITS.labels(job=self.job).inc()
        return True

    def _foreign_offsets(self) -> list[str]:
        """The group's committed offsets whose metadata is not this job's (``topic/partition``)."""
        request = ConsumerGroupTopicPartitions(self.group)
        answer = self._admin.list_consumer_group_offsets([request])[self.group].result(self.timeout)
        return sorted(
            f"{tp.topic}/{tp.partition}"
            for tp in answer.topic_partitions or []
            if tp.offset >= 0 and (tp.metadata or "") != self.owner
        )

    def _refuse(self, foreign: list[str]) -> None:
        self.refused = True
        GROUP_COMMIT_FAILURES.labels(job=self.job, reason=REASON_SHARED).inc()
        logger.error(
            "group_commit_refused",
            extra={
                "job": self.job,
                "group": self.group,
                "foreign_partitions": foreign,
                "detail": "the group holds offsets this job did not commit (another job or consumer uses "
                "the name): give the job a group of its own, or delete this one with "
                "kafka-consumer-groups.sh --delete --group if nothing else uses it; no more commits this run",
            },
        )


class GroupCommitListener(StreamingQueryListener):
    """Hands each batch's end offsets to a :class:`GroupCommitter` (the listener thread never waits on
    Kafka)."""

    def __init__(self, committer: GroupCommitter) -> None:
        super().__init__()
        self.committer = committer

    def onQueryStarted(self, event: Any) -> None:
        logger.info("group_commit_started", extra={"job": self.committer.job, "group": self.committer.group})

    def onQueryProgress(self, event: Any) -> None:
        metrics = BatchMetrics.from_progress(event.progress)
        if not metrics.end_offsets:
            GROUP_COMMIT_FAILURES.labels(job=self.committer.job, reason=REASON_PROGRESS).inc()
            logger.warning(
                "group_commit_skipped",
                extra={
                    "job": self.committer.job,
                    "batch_id": metrics.batch_id,
                    "unreadable": [f"{u.part}: {u.detail}" for u in metrics.unreadable],
                },
            )
            return
        self.committer.submit({(t, int(p)): o for (t, p), o in metrics.end_offsets.items()})

    def onQueryIdle(self, event: Any) -> None:
        return None

    def onQueryTerminated(self, event: Any) -> None:
        return None


# How long one admin request (reading or committing the group's offsets) may take.
_REQUEST_TIMEOUT_SECONDS = 10.0


def attach_group_commit(spark: Any, settings: SparkJobSettings, job: str) -> GroupCommitListener | None:
    """Commit every batch's end offsets to ``settings.commit_group`` when it is set, else nothing."""
    if not settings.commit_group:
        return None
    committer = GroupCommitter(
        settings.admin_config(),
        settings.commit_group,
        job=job,
        checkpoint=settings.checkpoint_path,
        timeout=_REQUEST_TIMEOUT_SECONDS,
    )
    listener = GroupCommitListener(committer)
    spark.streams.addListener(listener)
    return listener


def detach_group_commit(spark: Any, listener: GroupCommitListener | None) -> None:
    """Undo :func:`attach_group_commit`: stop listening, commit what is pending."""
    if listener is not None:
        spark.streams.removeListener(listener)
        listener.committer.close()
