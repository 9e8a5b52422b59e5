"""The observer's consume loop: windows per assigned partition → documents → commit after the write.

One thread owns the consumer. Closed windows and lag measurements wait in ``pending`` until one bulk
write stores them; only then are the windows' offsets committed (end offset + 1 of the written window),
so a crash replays at most the unwritten windows, whose deterministic ids make the replay overwrite.
While the sink refuses writes, the assigned partitions are paused: memory holds at most one window per
partition plus one consume batch, however long the outage lasts.

Rebalances (eager assignor): revoked partitions get one bounded attempt to write what is complete and
commit it; open windows are forgotten and re-observed by the next owner from the committed offset, so
windows of consecutive owners meet exactly at the commit. Cooperative-sticky is not used: ``_skip_written``
re-assigns with ``assign()`` (the eager call) and the eager revoke-everything keeps that hand-over simple;
its cost is re-reading open windows on every rebalance. Lag for source partition *p* is measured by
whichever replica owns partition *p* of the observed topic, and a newly gained partition is reported from
the next lag bucket on, so the previous owner and the new one never both report a bucket.

Usage::

    Observer(settings=s, shutdown=sd, consumer=c, sink=sink, probe=probe, profiler=profiler).run()
"""

from __future__ import annotations

import logging
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streamwatch_common.errors import SinkError
from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_observer import metrics
from streamwatch_observer.fields import reported_counts, safe_name
from streamwatch_observer.lag import LagProbe, PartitionLag
from streamwatch_observer.profile import Profiler, ProfileRequest
from streamwatch_observer.quality import QualityMeter
from streamwatch_observer.settings import ObserverSettings
from streamwatch_observer.sink import ObservationSink
from streamwatch_observer.window import ClosedWindow, OpenWindow, from_millis

logger = logging.getLogger(__name__)

_FIRST_BACKOFF = 0.5
_POLL_SECONDS = 0.5
_SHUTDOWN_WRITE_SECONDS = 10.0


def _int(value: int | None) -> int:
    # Records delivered without an error always carry a partition and an offset.
    assert value is not None
    return value


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Observer:
    """Observes the assigned partitions of one topic until shutdown is requested."""

    def __init__(
        self,
        *,
        settings: ObserverSettings,
        shutdown: GracefulShutdown,
        consumer: Consumer,
        sink: ObservationSink,
        probe: LagProbe,
        profiler: Profiler | None,
    ) -> None:
        self.settings = settings
        self.shutdown = shutdown
        self.consumer = consumer
        self.sink = sink
        self.probe = probe
        self.profiler = profiler
        self.meter = QualityMeter(settings.required_fields, settings.id_field, keep_rows=profiler is not None)
        self.assigned: set[int] = set()
        self.windows: dict[int, OpenWindow] = {}
        self.pending_windows: list[ClosedWindow] = []
        self.pending_lag: deque[tuple[str, dict[str, Any]]] = deque()
        self.latest_lag: dict[int, int] = {}
        # Owned partitions before the current rebalance (eager: revoke all, then assign), for the diff.
        self._before_rebalance: set[int] | None = None
        # Partition → first lag bucket this replica may report (the previous owner may have the current).
        self._lag_from_bucket: dict[int, int] = {}
        self.subscribed = False
        self._failing = False
        self._backoff = 0.0
        self._retry_at = 0.0
        self._next_lag = 0.0

    # --- main loop ------------------------------------------------------------------------------
    def run(self) -> None:
        """Consume, measure and write until shutdown; then write what is complete and leave the group."""
        topic = self.settings.topic
        self.consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self.subscribed = True
        logger.info("observer_subscribed", extra={"topic": topic, "group_id": self.settings.group_id})
        while not self.shutdown.requested:
            self.step()
        self._finish()

    def step(self) -> None:
        """One round: retry a failed write when due, consume a batch, close due windows, measure lag."""
        now = time.monotonic()
        if (self.pending_windows or self.pending_lag) and (not self._failing or now >= self._retry_at):
            self._flush()
        messages = self.consumer.consume(self.settings.consume_batch, timeout=_POLL_SECONDS)
        if messages:
            self._ingest(messages)
        now = time.monotonic()
        for partition, window in list(self.windows.items()):
            if window.due(now, self.settings.window_seconds):
                self._close(partition)
        if now >= self._next_lag:
            self._next_lag = now + self.settings.lag_interval_seconds
            self._measure_lag()
        if (self.pending_windows or self.pending_lag) and not self._failing:
            self._flush()

    def _ingest(self, messages: list[Message]) -> None:
        by_partition: dict[int, list[Message]] = {}
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consume_error", extra={"error": str(error)})
                continue
            by_partition.setdefault(_int(msg.partition()), []).append(msg)
        for partition, batch in by_partition.items():
            if partition not in self.assigned:
                continue  # fetched before a revoke: the new owner reads these again
            self._add(partition, batch)

    def _add(self, partition: int, batch: list[Message]) -> None:
        limit = self.settings.window_records
        start = 0
        while start < len(batch):
            window = self.windows.get(partition)
            if window is None:
                window = self.windows[partition] = OpenWindow(partition, _int(batch[start].offset()))
            room = limit - len(window.values)
            chunk = batch[start : start + room]
            # Tombstones (no value) are kept as empty values and counted as unparseable.
            values = [m.value() or b"" for m in chunk]
            window.add(values, _int(chunk[-1].offset()), chunk[0].timestamp()[1], chunk[-1].timestamp()[1])
            start += len(chunk)
            if len(window.values) >= limit:
                self._close(partition)

    def _close(self, partition: int) -> None:
        window = self.windows.pop(partition)
        started = time.perf_counter()
        quality = self.meter.measure(window.values)
        elapsed = time.perf_counter() - started
        metrics.WINDOW_DURATION.observe(elapsed)
        closed = ClosedWindow(
            partition,
            window.start_offset,
            window.end_offset,
            from_millis(window.first_timestamp_ms),
            from_millis(window.last_timestamp_ms),
            quality,
            elapsed,
        )
        self.pending_windows.append(closed)
        if self.profiler is not None and quality.rows is not None and len(quality.rows):
            rows = quality.rows
            frame = rows if not hasattr(rows, "to_pandas") else rows.to_pandas()
            self.profiler.submit(
                ProfileRequest(
                    self.settings.job,
                    {partition: (closed.start_offset, closed.end_offset)},
                    closed.window_start,
                    closed.window_end,
                    frame,
                )
            )
            quality.rows = None

    # --- documents and writes -------------------------------------------------------------------
    def _window_document(self, window: ClosedWindow) -> tuple[str, dict[str, Any]]:
        s = self.settings
        q = window.quality
        null_counts, left_out = reported_counts(q.null_counts, s.required_fields, s.max_reported_fields)
        doc: dict[str, Any] = {
            "@timestamp": _iso(window.window_end),
            "observed_at": _iso(datetime.now(UTC)),
            "doc_type": "window",
            "job": s.job,
            "topic": s.topic,
            "source_topic": s.source_topic,
            "partition": window.partition,
            "start_offset": window.start_offset,
            "end_offset": window.end_offset,
            "window_start": _iso(window.window_start),
            "window_end": _iso(window.window_end),
            "all_events": q.records,
            "unparseable": q.unparseable,
            "duplicates": q.duplicates,
            "invalid_records": q.invalid_records,
            "null_counts": null_counts,
            "null_counts_left_out": left_out,
            "lag_per_partition": {str(p): lag for p, lag in sorted(self.latest_lag.items())},
            "replica": s.replica_name,
            "measure_seconds": round(window.measure_seconds, 4),
        }
        for name in s.required_fields:
            doc[f"invalid_{safe_name(name)}"] = q.invalid(name)
        doc_id = f"{s.job}-{s.topic}-{window.partition}-{window.start_offset}-{window.end_offset}"
        return doc_id, doc

    def _lag_document(self, lag: PartitionLag, bucket: int) -> tuple[str, dict[str, Any]]:
        s = self.settings
        moment = datetime.fromtimestamp(bucket * s.lag_interval_seconds, tz=UTC)
        doc = {
            "@timestamp": _iso(moment),
            "observed_at": _iso(datetime.now(UTC)),
            "doc_type": "lag",
            "job": s.job,
            "topic": s.source_topic,
            "partition": lag.partition,
            "status": lag.status,
            "lag_offsets": lag.lag_offsets,
            "committed_offset": lag.committed_offset,
            "end_offset": lag.end_offset,
            "lag_seconds": None if lag.lag_seconds is None else round(lag.lag_seconds, 3),
            "batch_id": lag.batch_id,
            "replica": s.replica_name,
        }
        return f"{s.job}-lag-{lag.partition}-{bucket}", doc

    def _flush(self) -> bool:
        """Write everything pending in one bulk request; commit the windows' offsets after success."""
        windows = list(self.pending_windows)
        lags = list(self.pending_lag)
        documents = [self._window_document(w) for w in windows] + lags
        started = time.perf_counter()
        try:
            self.sink.write(documents)
        except SinkError as exc:
            metrics.SINK_FAILURES.labels("elasticsearch").inc()
            self._backoff = min(
                self.settings.sink_max_backoff_seconds, max(_FIRST_BACKOFF, self._backoff * 2)
            )
            self._retry_at = time.monotonic() + self._backoff
            logger.warning(
                "sink_write_failed",
                extra={
                    "documents": len(documents),
                    "windows": len(windows),
                    "retry_in_seconds": self._backoff,
                    "error": str(exc),
                },
            )
            self._pause()
            return False
        metrics.WRITE_DURATION.observe(time.perf_counter() - started)
        del self.pending_windows[: len(windows)]
        for _ in lags:
            self.pending_lag.popleft()
        self._commit(windows)
        for window in windows:
            self._count(window)
        self._backoff = 0.0
        self._resume()
        return True

    def _commit(self, windows: list[ClosedWindow]) -> None:
        if not windows:
            return
        # Windows of one partition are written in order, so the last one holds the committed position.
        positions: dict[int, int] = {}
        for window in windows:
            positions[window.partition] = window.end_offset + 1
        offsets = [
            TopicPartition(self.settings.topic, p, o) for p, o in positions.items() if p in self.assigned
        ]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # noqa: BLE001 - a lost commit only means a replay that overwrites
            metrics.COMMIT_FAILURES.inc()
            logger.warning(
                "commit_failed", extra={"offsets": {p: o for p, o in positions.items()}, "error": str(exc)}
            )

    def _count(self, window: ClosedWindow) -> None:
        s = self.settings
        q = window.quality
        labels = (s.topic, str(window.partition))
        metrics.RECORDS.labels(*labels).inc(q.records)
        metrics.UNPARSEABLE.labels(*labels).inc(q.unparseable)
        metrics.DUPLICATES.labels(*labels).inc(q.duplicates)
        metrics.WINDOWS.labels(*labels).inc()
        required = {safe_name(name) for name in s.required_fields}
        counts, _left_out = reported_counts(q.null_counts, s.required_fields, s.max_reported_fields)
        for name, count in counts.items():
            metrics.INVALID.labels(s.topic, name, "true" if name in required else "false").inc(count)
        logger.info(
            "window_written",
            extra={
                "partition": window.partition,
                "start_offset": window.start_offset,
                "end_offset": window.end_offset,
                "records": q.records,
                "unparseable": q.unparseable,
                "duplicates": q.duplicates,
                "invalid": {name: q.invalid(name) for name in s.required_fields},
                "measure_seconds": round(window.measure_seconds, 4),
            },
        )

    def _pause(self) -> None:
        if not self._failing:
            self._failing = True
            metrics.PAUSED.set(1)
            logger.info("consumption_paused", extra={"partitions": sorted(self.assigned)})
        if self.assigned:
            self.consumer.pause([TopicPartition(self.settings.topic, p) for p in self.assigned])

    def _resume(self) -> None:
        if self._failing:
            self._failing = False
            metrics.PAUSED.set(0)
            if self.assigned:
                self.consumer.resume([TopicPartition(self.settings.topic, p) for p in self.assigned])
            logger.info("consumption_resumed", extra={"partitions": sorted(self.assigned)})

    # --- lag ------------------------------------------------------------------------------------
    def _measure_lag(self) -> None:
        if not self.assigned:
            return
        lags = self.probe.measure(sorted(self.assigned))
        bucket = int(time.time() // self.settings.lag_interval_seconds)
        for lag in lags:
            if bucket < self._lag_from_bucket.get(lag.partition, bucket):
                continue  # gained during this bucket: its previous owner may already have reported it
            if lag.lag_offsets is None:
                self.latest_lag.pop(lag.partition, None)
            else:
                self.latest_lag[lag.partition] = lag.lag_offsets
            if len(self.pending_lag) >= self.settings.pending_lag_documents:
                self.pending_lag.popleft()
                metrics.LAG_DOCUMENTS_DROPPED.inc()
            self.pending_lag.append(self._lag_document(lag, bucket))
        logger.info(
            "lag_measured",
            extra={
                "bucket": bucket,
                "lag": {
                    str(lag.partition): {
                        "status": lag.status,
                        "lag_offsets": lag.lag_offsets,
                        "lag_seconds": lag.lag_seconds,
                    }
                    for lag in lags
                    if bucket >= self._lag_from_bucket.get(lag.partition, bucket)
                },
            },
        )

    # --- rebalances -----------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gained = sorted(tp.partition for tp in partitions)
        self.assigned.update(gained)
        metrics.ASSIGNED.set(len(self.assigned))
        logger.info("partitions_assigned", extra={"gained": gained, "owned": sorted(self.assigned)})
        self._log_assignment_change()
        self._skip_written(consumer, partitions)
        if self._failing and partitions:
            consumer.pause(partitions)
        self._next_lag = 0.0  # report the new partitions' lag right away

    def _skip_written(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start after the last stored window when it is ahead of the committed offset.

        That happens when a replica stopped between a write and its commit: re-reading from the commit
        would cut the replayed records into windows that overlap the stored ones."""
        if not partitions:
            return
        try:
            written = self.sink.last_end_offsets(
                self.settings.job, self.settings.topic, [tp.partition for tp in partitions]
            )
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
                logger.warning("assignment_lookup_failed", extra={"error": str(exc)})
                continue
            if end + 1 <= high:
                moved.append(TopicPartition(self.settings.topic, tp.partition, end + 1))
        if not moved:
            return
        starts = {tp.partition: tp.offset for tp in moved}
        consumer.assign(
            [
                TopicPartition(self.settings.topic, tp.partition, starts.get(tp.partition, tp.offset))
                for tp in committed
            ]
        )
        consumer.commit(offsets=moved, asynchronous=False)
        logger.info("assignment_moved_past_written_windows", extra={"starts": starts})

    def _log_assignment_change(self) -> None:
        """One line per rebalance: partitions really gained and lost against the ownership before it."""
        before = self._before_rebalance or set()
        self._before_rebalance = None
        gained = sorted(self.assigned - before)
        lost = sorted(before - self.assigned)
        bucket = int(time.time() // self.settings.lag_interval_seconds)
        for partition in gained:
            self._lag_from_bucket[partition] = bucket + 1
        for partition in lost:
            self._lag_from_bucket.pop(partition, None)
        logger.info(
            "assignment_changed",
            extra={
                "gained": gained,
                "lost": lost,
                "owned": sorted(self.assigned),
                "replica": self.settings.replica_name,
            },
        )
        if not self.assigned:
            # More replicas than partitions: this one idles, healthy and ready, until a rebalance.
            logger.info("no_partitions_assigned", extra={"replica": self.settings.replica_name})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = sorted(tp.partition for tp in partitions)
        if self.pending_windows:
            self._flush()  # one attempt: what is written is committed, the rest is re-observed
        self._forget(lost, "partitions_revoked")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget(sorted(tp.partition for tp in partitions), "partitions_lost")

    def _forget(self, lost: list[int], event: str) -> None:
        if self._before_rebalance is None:
            self._before_rebalance = set(self.assigned)
        dropped = [w for w in self.pending_windows if w.partition in lost]
        self.pending_windows = [w for w in self.pending_windows if w.partition not in lost]
        open_records = sum(len(self.windows.pop(p).values) for p in lost if p in self.windows)
        self.assigned.difference_update(lost)
        for partition in lost:
            self.latest_lag.pop(partition, None)
        self.probe.forget(lost)
        metrics.ASSIGNED.set(len(self.assigned))
        logger.info(
            event,
            extra={
                "lost": lost,
                "owned": sorted(self.assigned),
                "unwritten_windows": len(dropped),
                "open_records": open_records,
            },
        )

    # --- shutdown -------------------------------------------------------------------------------
    def _finish(self) -> None:
        """Close the open windows and try to write them for a bounded time, then leave the group."""
        for partition in list(self.windows):
            self._close(partition)
        deadline = time.monotonic() + _SHUTDOWN_WRITE_SECONDS
        while (self.pending_windows or self.pending_lag) and time.monotonic() < deadline:
            if self._flush():
                break
            time.sleep(min(self._backoff, max(0.0, deadline - time.monotonic())))
        if self.pending_windows:
            logger.warning(
                "shutdown_unwritten_windows",
                extra={"windows": len(self.pending_windows), "note": "re-observed after restart"},
            )
        self.consumer.close()
        logger.info("observer_stopped")
