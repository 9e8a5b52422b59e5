"""The observer group's own lag on the observed topic, per owned partition: what scaling observers lowers.

The lag of a partition is its newest offset (high watermark) minus the group's committed offset, both
asked of the broker. Committed, not the consumer's position, for two reasons. The observer commits a
window's offsets only after its observation is written, so the committed lag counts every record not
yet durably observed: read but still in an open window or being measured, or not read at all. And it is
the number Kafka's own tools (``kafka-consumer-groups.sh --describe``), Burrow and KEDA's Kafka scaler
compute for the same group, so a HorizontalPodAutoscaler on this metric and the chart's KEDA
ScaledObject scale on one number. Its price: in steady state each partition's lag climbs to one
window's records (``OBSERVER_WINDOW_RECORDS``, or ``OBSERVER_WINDOW_SECONDS`` of the partition's
traffic, whichever closes the window first) before the window is written and committed, so a scaling
threshold belongs above that.

A partition without a commit is read from where the group's ``auto.offset.reset`` starts it (the
oldest retained record by default), and a committed offset that retention has passed counts from the
oldest retained record, where the consumer restarts by default; either way the lag is what the group
still has to read. This service exports ``observer_consumer_lag_offsets{topic,partition}`` only for the
partitions the replica owns; a lost partition's series goes with it (its next owner exports it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streamwatch_observer import metrics
from streamwatch_observer.lag import watermarks

logger = logging.getLogger(__name__)

# librdkafka's names for "start at the end of the partition" (auto.offset.reset).
_RESET_TO_END = frozenset({"latest", "largest", "end"})


class ConsumerLag:
    """Measures the group's lag of the owned partitions with the group's own consumer, and exports it.

    Usage::

        lag = ConsumerLag("processed_visits", auto_offset_reset="earliest")
        lag.measure(consumer, [0, 1])   # {0: 12, 1: 0}; None where the broker did not answer
        lag.forget([1])                 # partition revoked: its next owner exports it
    """

    def __init__(self, topic: str, *, auto_offset_reset: str = "earliest", timeout: float = 5.0) -> None:
        self.topic = topic
        self.reset_to_end = auto_offset_reset in _RESET_TO_END
        self.timeout = timeout
        self._exported: set[int] = set()

    def measure(
        self, consumer: Consumer, partitions: Sequence[int], *, ends: Consumer | None = None
    ) -> dict[int, int | None]:
        """Lag of each given partition (None: unknown, its series removed); never raises for the broker.

        ``consumer`` is the group's: it answers for the committed offsets. ``ends``, when given, is asked
        for the newest offsets instead: a client that does not fetch. The broker answers the requests of
        one connection in order, so on the group consumer's connection the question waits behind a fetch
        that long-polls for new records (``fetch.wait.max.ms``) and holds the consume loop meanwhile."""
        if not partitions:
            return {}
        committed = self._committed(consumer, partitions)
        asked = ends if ends is not None else consumer
        lags: dict[int, int | None] = {}
        for partition in sorted(partitions):
            lag = self._lag(asked, partition, committed[partition]) if partition in committed else None
            lags[partition] = lag
            self._export(partition, lag)
        return lags

    def forget(self, partitions: Sequence[int]) -> None:
        """Drop the series of partitions this replica no longer owns."""
        for partition in partitions:
            self._export(partition, None)

    def _committed(self, consumer: Consumer, partitions: Sequence[int]) -> dict[int, int | None]:
        """The group's committed offset per partition (None: nothing committed yet); a partition the
        broker gave no answer for is left out, logged and counted."""
        asked = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        try:
            answer = consumer.committed(asked, timeout=self.timeout)
        except KafkaException as exc:
            self._failed(sorted(partitions), str(exc))
            return {}
        committed: dict[int, int | None] = {}
        for tp in answer:
            if tp.error is not None:
                self._failed([tp.partition], str(tp.error))
                continue
            committed[tp.partition] = tp.offset if tp.offset >= 0 else None  # OFFSET_INVALID: no commit
        return committed

    def _lag(self, consumer: Consumer, partition: int, committed: int | None) -> int | None:
        marks = watermarks(consumer, self.topic, partition, self.timeout)
        if marks is None:
            return None
        low, high = marks
        if committed is not None:
            return max(0, high - max(committed, low))
        return 0 if self.reset_to_end else high - low

    def _failed(self, partitions: list[int], error: str) -> None:
        metrics.LAG_FAILURES.labels("group_offsets").inc()
        logger.warning(
            "consumer_lag_committed_failed",
            extra={"topic": self.topic, "partitions": partitions, "error": error},
        )

    def _export(self, partition: int, lag: int | None) -> None:
        labels = (self.topic, str(partition))
        if lag is not None:
            metrics.CONSUMER_LAG.labels(*labels).set(lag)
            self._exported.add(partition)
        elif partition in self._exported:
            # Unknown or no longer owned: an old number must not keep steering an autoscaler.
            metrics.CONSUMER_LAG.remove(*labels)
            self._exported.discard(partition)
