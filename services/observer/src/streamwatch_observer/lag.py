"""Lag of the observed job per source partition: its checkpoint's committed offsets vs the topic's end.

Statuses: ``ok`` (committed offsets known), ``not_started`` (no committed batch yet),
``checkpoint_damaged`` (committed batches exist but none can be read), ``checkpoint_unreadable`` (the
checkpoint cannot be listed: an object store away or refusing the credentials, a missing bucket, no
permission; tried again after a back-off, the reason logged as ``checkpoint_unreadable``), ``new_partition``
(the source has a partition the checkpoint does not know yet; the job reads it from the beginning),
``unknown`` (the broker did not answer for the partition). The time lag is the age of the oldest
record not yet committed, read from the source topic at the committed offset. Apart from that
availability status, a partition whose status is ``ok`` gets an ``evaluation`` over a sliding window of
measurements after Burrow's rules (ok, warn, stall, stop, rewind; see lag_evaluation.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streamwatch_common.backoff import Backoff
from streamwatch_common.errors import CheckpointError
from streamwatch_common.kafka_renewable import RenewableClient
from streamwatch_common.object_store import CheckpointStore
from streamwatch_observer import metrics
from streamwatch_observer.checkpoint import Committed, read_committed
from streamwatch_observer.lag_evaluation import EVALUATIONS, Evaluation, LagEvaluator, Sample

logger = logging.getLogger(__name__)

# The longest wait before an unreadable checkpoint is tried again.
_UNREADABLE_MAX_BACKOFF_SECONDS = 30.0

LagStatus = Literal[
    "ok", "not_started", "checkpoint_damaged", "checkpoint_unreadable", "new_partition", "unknown"
]
_ALL_STATUSES: tuple[LagStatus, ...] = (
    "ok", "not_started", "checkpoint_damaged", "checkpoint_unreadable", "new_partition", "unknown"
)  # fmt: skip


@dataclass(frozen=True)
class PartitionLag:
    """One lag measurement of one source partition."""

    partition: int
    status: LagStatus
    committed_offset: int | None
    end_offset: int | None
    lag_offsets: int | None
    lag_seconds: float | None
    batch_id: int | None
    commit_time: float | None = None
    # Burrow-style judgement over the evaluation window; None unless the status is ``ok``.
    evaluation: Evaluation | None = None


class LagProbe:
    """Measures lag with its own consumer (assign only, never joins the group, never commits), behind a
    renewable handle: a consumer left holding no broker is closed and replaced (``kafka_renewable``).

    Usage::

        probe = LagProbe(
            settings.consumer_config("observer-lag"), "visits", Path("/checkpoint"), 300.0, job="passthrough"
        )
        # or CheckpointStore.open("s3://checkpoints/passthrough", settings) for an object store
        probe.measure([0, 1])  # [PartitionLag(partition=0, status="ok", evaluation="ok", ...), ...]
    """

    def __init__(
        self,
        consumer_config: dict[str, Any],
        source_topic: str,
        checkpoint: CheckpointStore | Path,
        evaluation_window_seconds: float,
        *,
        job: str,
        timeout: float = 5.0,
        factory: Callable[[dict[str, Any]], Consumer] = Consumer,
    ) -> None:
        self.job = job
        self.source_topic = source_topic
        # The partitions whose series this probe exports now (to drop them with their owner).
        self.exported: set[int] = set()
        self.checkpoint = CheckpointStore.of(checkpoint)
        # After the checkpoint could not be listed: not tried again before then (monotonic seconds).
        self._unreadable_until = 0.0
        self._unreadable_backoff = Backoff(first=1.0, maximum=_UNREADABLE_MAX_BACKOFF_SECONDS)
        self.timeout = timeout
        self.evaluator = LagEvaluator(evaluation_window_seconds)
        config = {**consumer_config, "enable.auto.commit": False}
        self.kafka = RenewableClient("observer-lag-probe", config, factory, on_renew=_close_old)

    def close(self) -> None:
        self.kafka.client.close()

    def measure(self, partitions: list[int]) -> list[PartitionLag]:
        """Lag of each given source partition; never raises for a missing or partial checkpoint."""
        # The probe never consumes: this serves its queued client log lines (see LibrdkafkaLog) and its
        # statistics, which say whether it still holds a broker (streamwatch_common.kafka_health).
        self.kafka.client.poll(0)
        self.kafka.renew_if_orphaned(time.monotonic())
        committed = self._committed()
        results: list[PartitionLag] = []
        starts: dict[int, int] = {}
        for partition in sorted(partitions):
            lag = self._partition(partition, committed)
            results.append(lag)
            if lag.lag_offsets and lag.committed_offset is not None:
                starts[partition] = lag.committed_offset
        ages = self._record_ages(starts)
        now = time.time()
        final = [
            replace(r, lag_seconds=ages.get(r.partition, r.lag_seconds), evaluation=self._evaluate(r, now))
            for r in results
        ]
        for lag in final:
            self._export(lag)
        return final

    def _committed(self) -> Committed:
        """The checkpoint's committed position, or unreadable (also while backing off after a failure, so
        an object store that is away costs the loop one bounded request per back-off)."""
        now = time.monotonic()
        if now < self._unreadable_until:
            return Committed(None, None, unreadable=True)
        try:
            committed = read_committed(self.checkpoint, self.source_topic)
        except CheckpointError as exc:
            delay = self._unreadable_backoff.next_delay()
            self._unreadable_until = now + delay
            metrics.LAG_FAILURES.labels("checkpoint").inc()
            logger.warning(
                "checkpoint_unreadable",
                extra={
                    "spark_job": self.job,
                    "path": self.checkpoint.location,
                    "error": str(exc),
                    "retry_in_seconds": delay,
                },
            )
            return Committed(None, None, unreadable=True)
        self._unreadable_backoff.reset()
        return committed

    def _evaluate(self, lag: PartitionLag, now: float) -> Evaluation | None:
        # Only a partition read from the checkpoint has a committed offset worth judging; other statuses
        # keep the window as it is, so a moment of damage does not hide a rewind around it.
        position, end = lag.committed_offset, lag.end_offset
        if lag.status != "ok" or lag.batch_id is None or position is None or end is None:
            return None
        sample = Sample(now, lag.batch_id, lag.commit_time, position, end)
        return self.evaluator.observe(lag.partition, sample)

    def _partition(self, partition: int, committed: Committed) -> PartitionLag:
        marks = watermarks(self.kafka.client, self.source_topic, partition, self.timeout)
        if marks is None:
            return PartitionLag(partition, "unknown", None, None, None, None, committed.batch_id)
        low, high = marks
        if committed.offsets is None:
            status: LagStatus = (
                "checkpoint_unreadable"
                if committed.unreadable
                else "checkpoint_damaged"
                if committed.damaged
                else "not_started"
            )
            return PartitionLag(partition, status, None, high, None, None, None)
        if partition not in committed.offsets:
            # The job reads a partition it has never seen from the beginning of what is retained.
            lag = high - low
            return PartitionLag(
                partition, "new_partition", low, high, lag, 0.0 if lag == 0 else None, committed.batch_id
            )
        position = committed.offsets[partition]
        lag = max(0, high - position)
        return PartitionLag(
            partition,
            "ok",
            position,
            high,
            lag,
            0.0 if lag == 0 else None,
            committed.batch_id,
            committed.commit_time,
        )

    def _record_ages(self, starts: dict[int, int]) -> dict[int, float]:
        """Seconds since the record at each start offset was produced (the oldest one still waiting)."""
        if not starts:
            return {}
        ages: dict[int, float] = {}
        consumer = self.kafka.client
        try:
            consumer.assign([TopicPartition(self.source_topic, p, o) for p, o in starts.items()])
            deadline = time.monotonic() + self.timeout
            while len(ages) < len(starts) and time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                partition = msg.partition()
                if partition is None or partition in ages:
                    continue
                kind, stamp = msg.timestamp()
                if kind != 0 and stamp > 0:  # 0 = TIMESTAMP_NOT_AVAILABLE
                    ages[partition] = max(0.0, time.time() - stamp / 1000.0)
            consumer.unassign()
        except KafkaException as exc:
            metrics.LAG_FAILURES.labels("record_age").inc()
            logger.warning("lag_record_age_failed", extra={"error": str(exc)})
        return ages

    def _export(self, lag: PartitionLag) -> None:
        self.exported.add(lag.partition)
        labels = (self.job, self.source_topic, str(lag.partition))
        for status in _ALL_STATUSES:
            metrics.LAG_STATUS.labels(*labels, status).set(1 if status == lag.status else 0)
        for evaluation in EVALUATIONS:
            if lag.evaluation is not None:
                current = 1 if evaluation == lag.evaluation else 0
                metrics.LAG_EVALUATION.labels(*labels, evaluation).set(current)
            elif _has(metrics.LAG_EVALUATION, (*labels, evaluation)):
                metrics.LAG_EVALUATION.remove(*labels, evaluation)
        if lag.lag_offsets is None:
            # No committed position (not started, damaged, broker silent): neither lag is known, and an
            # age left from an earlier measurement would hold the lag-seconds alert in its old state.
            for gauge in (metrics.LAG_OFFSETS, metrics.LAG_SECONDS):
                if _has(gauge, labels):
                    gauge.remove(*labels)
            return
        metrics.LAG_OFFSETS.labels(*labels).set(lag.lag_offsets)
        # The age alone unread (the record did not come within the timeout): the last one stays, it is
        # a lower bound of the age, and dropping it would restart a pending lag-seconds alert.
        if lag.lag_seconds is not None:
            metrics.LAG_SECONDS.labels(*labels).set(lag.lag_seconds)

    def forget(self, partitions: list[int]) -> None:
        """Drop the series of partitions this replica no longer owns (another one reports them now)."""
        for partition in partitions:
            self.exported.discard(partition)
            labels = (self.job, self.source_topic, str(partition))
            for gauge in (metrics.LAG_OFFSETS, metrics.LAG_SECONDS):
                if _has(gauge, labels):
                    gauge.remove(*labels)
            for status in _ALL_STATUSES:
                if _has(metrics.LAG_STATUS, (*labels, status)):
                    metrics.LAG_STATUS.remove(*labels, status)
            for evaluation in EVALUATIONS:
                if _has(metrics.LAG_EVALUATION, (*labels, evaluation)):
                    metrics.LAG_EVALUATION.remove(*labels, evaluation)
        # The evaluation windows stay: rebalances are eager (every partition is revoked, most come back
        # at once), and a window the replica did not feed meanwhile restarts itself (see LagEvaluator).


def watermarks(client: Consumer, topic: str, partition: int, timeout: float) -> tuple[int, int] | None:
    """The partition's oldest retained and next offset, asked of its leader (not the client's cache, which
    only fetching refreshes); None, logged and counted, when the broker does not answer in time."""
    try:
        marks = client.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        error = "timed out" if marks is None else None  # the client's documented answer to a timeout
    except KafkaException as exc:
        marks, error = None, str(exc)
    if marks is None:
        metrics.LAG_FAILURES.labels("watermarks").inc()
        logger.warning(
            "lag_watermarks_failed", extra={"topic": topic, "partition": partition, "error": error}
        )
        return None
    low, high = marks
    return int(low), int(high)


def topic_partitions(client: Consumer, topic: str, timeout: float) -> list[int] | None:
    """The topic's partitions, asked of the cluster; None, logged and counted, when it does not answer or
    does not know the topic."""
    try:
        found = client.list_topics(topic, timeout=timeout).topics.get(topic)
        error = None if found is None or found.error is None else str(found.error)
        partitions = sorted(found.partitions) if found is not None and error is None else []
    except KafkaException as exc:
        partitions, error = [], str(exc)
    if partitions:
        return partitions
    metrics.LAG_FAILURES.labels("metadata").inc()
    logger.warning("lag_partitions_failed", extra={"topic": topic, "error": error or "no partitions"})
    return None


def _close_old(old: Consumer, new: Consumer) -> None:
    old.close()


def _has(metric: Any, labels: tuple[str, ...]) -> bool:
    return labels in metric._metrics
