"""Pending observations, one bulk write, then the commit: offsets move only after the documents are stored.

Measured windows and lag documents wait in the pending buffer until one bulk write stores them; only
then are the windows' offsets committed (end offset + 1 of the written window), so a crash replays at
most the unwritten windows, whose deterministic ids make the replay overwrite. While the sink refuses
writes, the owned partitions are paused and writes are retried after an exponential back-off: memory
holds at most the open windows, the windows being measured and one consume batch, however long the
outage lasts. Lag documents are bounded separately (the oldest are dropped and counted).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Literal, Protocol

from confluent_kafka import KafkaError, TopicPartition
from prometheus_client import Gauge

from streamwatch_common.backoff import Backoff
from streamwatch_common.errors import SinkError
from streamwatch_observer import metrics
from streamwatch_observer.documents import Document, window_document
from streamwatch_observer.fields import reported_counts, reported_scores, safe_name
from streamwatch_observer.ownership import Ownership
from streamwatch_observer.settings import ObserverSettings
from streamwatch_observer.window import ClosedWindow

logger = logging.getLogger(__name__)

_FIRST_BACKOFF = 0.5


class Offsets(Protocol):
    """What the writer needs of the consumer (``confluent_kafka.Consumer`` has it)."""

    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[True]
    ) -> list[TopicPartition] | None: ...

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...


class Sink(Protocol):
    """What the writer needs of the sink (:class:`~streamwatch_observer.sink.ObservationSink` has it)."""

    def write(self, documents: list[Document]) -> None: ...


class ObservationWriter:
    """Buffers windows and lag documents, writes them in one bulk request, then commits the windows.

    Usage::

        writer = ObservationWriter(settings, consumer, sink, ownership)
        writer.add_windows(measured)
        if writer.due(time.monotonic()):
            writer.flush()
    """

    def __init__(
        self, settings: ObserverSettings, offsets: Offsets, sink: Sink, ownership: Ownership
    ) -> None:
        self.settings = settings
        self.offsets = offsets
        self.sink = sink
        self.ownership = ownership
        self.windows: list[ClosedWindow] = []
        self.lag: deque[Document] = deque()
        self.backoff = Backoff(first=_FIRST_BACKOFF, maximum=settings.sink_max_backoff_seconds)
        self.delay = 0.0
        self.paused = False
        self._retry_at = 0.0
        # Per drift gauge and partition, the fields whose series this replica exports (see _export_drift).
        self._drift_fields: dict[Gauge, dict[int, set[str]]] = {
            metrics.FIELD_DRIFT: {},
            metrics.FIELD_DRIFT_REFERENCE: {},
        }
        # Partitions whose counted offset this replica exports (dropped with the partition).
        self._counted: set[int] = set()

    @property
    def pending(self) -> bool:
        return bool(self.windows or self.lag)

    def add_windows(self, windows: Sequence[ClosedWindow]) -> None:
        self.windows.extend(windows)

    def add_lag(self, documents: Sequence[Document]) -> None:
        """Queue lag documents; beyond the bound the oldest are dropped (the sink stayed down too long)."""
        for document in documents:
            if len(self.lag) >= self.settings.pending_lag_documents:
                self.lag.popleft()
                metrics.LAG_DOCUMENTS_DROPPED.inc()
            self.lag.append(document)

    def due(self, now: float) -> bool:
        """Something is pending and no back-off is running (or it has run out)."""
        return self.pending and (not self.paused or now >= self._retry_at)

    def flush(self) -> bool:
        """Write everything pending in one bulk request; commit the windows' offsets after success."""
        windows = list(self.windows)
        lags = list(self.lag)
        latest = self.ownership.latest_lag
        documents = [window_document(self.settings, w, latest) for w in windows] + lags
        started = time.perf_counter()
        try:
            self.sink.write(documents)
        except SinkError as exc:
            metrics.SINK_FAILURES.labels("elasticsearch").inc()
            self.delay = self.backoff.next_delay()
            self._retry_at = time.monotonic() + self.delay
            logger.warning(
                "sink_write_failed",
                extra={
                    "documents": len(documents),
                    "windows": len(windows),
                    "retry_in_seconds": self.delay,
                    "error": str(exc),
                },
            )
            self._pause()
            return False
        metrics.WRITE_DURATION.observe(time.perf_counter() - started)
        del self.windows[: len(windows)]
        for _ in lags:
            self.lag.popleft()
        self._commit(windows)
        for window in windows:
            self._count(window)
        self.backoff.reset()
        self.delay = 0.0
        self._resume()
        return True

    def forget(self, partitions: Sequence[int]) -> int:
        """Drop the unwritten windows of ``partitions`` (their next owner re-observes them)."""
        before = len(self.windows)
        self.windows = [w for w in self.windows if w.partition not in partitions]
        for partition in partitions:  # the next owner exports these partitions' drift and position
            self._export_drift(partition, {}, {})
            if partition in self._counted:
                self._counted.discard(partition)
                metrics.COUNTED_OFFSET.remove(self.settings.topic, str(partition))
        return before - len(self.windows)

    def pause_new(self, partitions: list[TopicPartition]) -> None:
        """Newly assigned partitions start paused while the sink refuses writes."""
        if self.paused and partitions:
            self.offsets.pause(partitions)

    def _commit(self, windows: list[ClosedWindow]) -> None:
        # Windows of one partition are written in order, so the last one holds the committed position.
        positions: dict[int, int] = {}
        for window in windows:
            positions[window.partition] = window.end_offset + 1
        topic = self.settings.topic
        owned = self.ownership.assigned
        offsets = [TopicPartition(topic, p, o) for p, o in positions.items() if p in owned]
        if not offsets:
            return
        # Asynchronous, its result reported to commit_result while the loop consumes: a synchronous commit
        # that waits for a group coordinator can hold the loop (and the renewal of a client that lost its
        # broker) for as long as the coordinator stays away.
        try:
            self.offsets.commit(offsets=offsets, asynchronous=True)
        except Exception as exc:  # noqa: BLE001 - a lost commit only means a replay that overwrites
            metrics.COMMIT_FAILURES.inc()
            logger.warning("commit_failed", extra={"offsets": positions, "error": str(exc)})

    def _count(self, window: ClosedWindow) -> None:
        s = self.settings
        q = window.quality
        labels = (s.topic, str(window.partition))
        metrics.RECORDS.labels(*labels).inc(q.records)
        metrics.UNPARSEABLE.labels(*labels).inc(q.unparseable)
        metrics.DUPLICATES.labels(*labels).inc(q.duplicates)
        metrics.WINDOWS.labels(*labels).inc()
        metrics.COUNTED_OFFSET.labels(*labels).set(window.end_offset + 1)
        self._counted.add(window.partition)
        required = {safe_name(name) for name in s.required_fields}
        counts, _left_out = reported_counts(q.null_counts, s.required_fields, s.max_reported_fields)
        for name, count in counts.items():
            metrics.INVALID.labels(s.topic, name, "true" if name in required else "false").inc(count)
        self._export_drift(
            window.partition,
            reported_scores(window.drift, counts),
            reported_scores(window.drift_reference, counts),
        )
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

    def _export_drift(self, partition: int, previous: dict[str, float], reference: dict[str, float]) -> None:
        """The drift gauges of a partition (against its previous window, against its pinned reference)
        become those of its last written window: a field without a score there (a window below the
        minimum size, a reference still being built, a partition lost) loses its series, so an old score
        cannot hold an alert."""
        s = self.settings
        for gauge, scores in ((metrics.FIELD_DRIFT, previous), (metrics.FIELD_DRIFT_REFERENCE, reference)):
            exported = self._drift_fields[gauge]
            for name in exported.pop(partition, set()) - set(scores):
                gauge.remove(s.job, s.topic, str(partition), name)
            for name, score in scores.items():
                gauge.labels(s.job, s.topic, str(partition), name).set(score)
            if scores:
                exported[partition] = set(scores)

    def _owned(self) -> list[TopicPartition]:
        return [TopicPartition(self.settings.topic, p) for p in self.ownership.sorted()]

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            metrics.PAUSED.set(1)
            logger.info("consumption_paused", extra={"partitions": self.ownership.sorted()})
        if self.ownership.assigned:
            self.offsets.pause(self._owned())

    def _resume(self) -> None:
        if self.paused:
            self.paused = False
            metrics.PAUSED.set(0)
            if self.ownership.assigned:
                self.offsets.resume(self._owned())
            logger.info("consumption_resumed", extra={"partitions": self.ownership.sorted()})


def commit_result(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
    """The consumer's ``on_commit``: a commit that failed, wholly or for some partitions, is logged and
    counted (a lost commit only means a replay that overwrites)."""
    failed = {tp.partition: str(tp.error) for tp in partitions if tp.error is not None}
    if err is None and not failed:
        return
    metrics.COMMIT_FAILURES.inc()
    logger.warning(
        "commit_failed",
        extra={
            "offsets": {tp.partition: tp.offset for tp in partitions},
            "error": str(err) if err is not None else failed,
        },
    )
