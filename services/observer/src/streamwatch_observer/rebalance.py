"""Rebalance callbacks that never fail silently, and the hand-over of a newly assigned partition.

librdkafka calls the callbacks from inside ``consume()``. An exception raised there would surface from
that call without saying which callback failed, or for which partitions; :func:`guarded` logs it with
that context, counts it in ``observer_rebalance_failures_total{callback}`` and raises it again as
:class:`RebalanceError`, which stops the replica (its ownership is unknown after a half-done rebalance;
a restart re-joins the group from the committed offsets).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streamwatch_common.errors import StreamwatchError
from streamwatch_observer import metrics
from streamwatch_observer.sink import ObservationSink

logger = logging.getLogger(__name__)

Callback = Callable[[Consumer, list[TopicPartition]], None]


class RebalanceError(StreamwatchError):
    """A rebalance callback failed; the replica's partition ownership is no longer known."""


def guarded(name: str, callback: Callback) -> Callback:
    """``callback`` logging and counting its failure with context, re-raised as :class:`RebalanceError`."""

    @functools.wraps(callback)
    def wrapper(consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            callback(consumer, partitions)
        except Exception as exc:
            metrics.REBALANCE_FAILURES.labels(name).inc()
            logger.exception(
                "rebalance_callback_failed",
                extra={
                    "callback": name,
                    "partitions": sorted(tp.partition for tp in partitions),
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
            raise RebalanceError(f"{name} of {len(partitions)} partition(s): {exc}") from exc

    return wrapper


def skip_written(
    consumer: Consumer, partitions: list[TopicPartition], sink: ObservationSink, job: str, topic: str
) -> None:
    """Start after the last stored window when it is ahead of the committed offset.

    That happens when a replica stopped between a write and its commit: re-reading from the commit
    would cut the replayed records into windows that overlap the stored ones."""
    if not partitions:
        return
    try:
        written = sink.last_end_offsets(job, topic, [tp.partition for tp in partitions])
        committed = consumer.committed(partitions, timeout=10)
    except Exception as exc:  # noqa: BLE001 - unknown: start from the commit, replays overwrite
        metrics.SINK_FAILURES.labels("elasticsearch").inc()
        logger.warning("assignment_lookup_failed", extra={"error": str(exc)})
        return
    moved = []
    for tp in committed:
        end = written.get(tp.partition)
        # Only with a real commit behind it, and never past the partition's end: stored windows of a
        # topic that was deleted and re-created must not make the observer skip new records.
        if end is None or tp.offset < 0 or end + 1 <= tp.offset:
            continue
        try:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
        except KafkaException as exc:
            logger.warning("assignment_lookup_failed", extra={"error": str(exc), "partition": tp.partition})
            continue
        if end + 1 <= high:
            moved.append(TopicPartition(topic, tp.partition, end + 1))
    if not moved:
        return
    starts = {tp.partition: tp.offset for tp in moved}
    consumer.assign(
        [TopicPartition(topic, tp.partition, starts.get(tp.partition, tp.offset)) for tp in committed]
    )
    consumer.commit(offsets=moved, asynchronous=True)  # its result goes to writer.commit_result
    logger.info("assignment_moved_past_written_windows", extra={"starts": starts})
