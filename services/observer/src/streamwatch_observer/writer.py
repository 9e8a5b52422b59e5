"""Pending observations, one bulk write, then the commit: offsets move only after the documents are stored.

Measured windows and lag documents wait in the pending buffer until one bulk write stores them; only
then are the windows' offsets committed (end offset + 1 of the written window), so a crash replays at
most the unwritten windows, whose deterministic ids make the replay overwrite. While the sink refuses
writes, the owned partitions are paused and writes are retried after an exponential back-off: memory
holds at most the open windows, the windows being measured and one consume batch, however long the
outage lasts. Lag documents are bounded separately (the oldest are dropped and counted). What a written
window counted is exported by ``window_metrics``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Literal, Protocol

from confluent_kafka import KafkaError, TopicPartition

from streamwatch_common.backoff import Backoff
from streamwatch_common.errors import SinkError
from streamwatch_observer import metrics
from streamwatch_observer.documents import Document, WindowDocuments
from streamwatch_observer.ownership import Ownership
from streamwatch_observer.window import ClosedWindow
from streamwatch_observer.window_metrics import WindowMetrics

logger = logging.getLogger(__name__)

_FIRST_BACKOFF = 0.5


class Offsets(Protocol):
    """What the writer needs of the consumer (``confluent_kafka.Consumer`` has it)."""

    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[True]
    ) -> list[TopicPartition] | None: ...

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...


class ConsumerHandle(Protocol):
    """The handle of a consumer that can be replaced (``streamwatch_common.kafka_renewable``): the writer
    asks it for the consumer at each use and never keeps one."""

    @property
    def client(self) -> Offsets: ...


class Sink(Protocol):
    """What the writer needs of the sink (:class:`~streamwatch_observer.sink.ObservationSink` has it)."""

    def write(self, documents: list[Document]) -> None: ...


class ObservationWriter:
    """Buffers windows and lag documents, writes them in one bulk request, then commits the windows.

    Usage::

        documents = WindowDocuments(origin, required_fields=("user_id",), max_reported_fields=64)
        reporter = WindowMetrics(job=origin.job, topic=origin.topic)
        writer = ObservationWriter(
            consumer, sink, ownership, documents, reporter, max_backoff=30.0, pending_lag_documents=1000
        )
        writer.add_windows(measured)
        if writer.due(time.monotonic()):
            writer.flush()
    """

    def __init__(
        self,
        consumer: ConsumerHandle,
        sink: Sink,
        ownership: Ownership,
        documents: WindowDocuments,
        reporter: WindowMetrics,
        *,
        max_backoff: float,
        pending_lag_documents: int,
    ) -> None:
        self.windows: list[ClosedWindow] = []
        self.lag: deque[Document] = deque()
        self.consumer = consumer
        self.sink = sink
        self.ownership = ownership
        self.documents = documents
        self.reporter = reporter
        self.backoff = Backoff(first=_FIRST_BACKOFF, maximum=max_backoff)
        self.pending_lag_documents = pending_lag_documents
        self.delay = 0.0
        self.paused = False
        self._retry_at = 0.0

    @property
    def pending(self) -> bool:
        return bool(self.windows or self.lag)

    def add_windows(self, windows: Sequence[ClosedWindow]) -> None:
        self.windows.extend(windows)

    def add_lag(self, documents: Sequence[Document]) -> None:
        """Queue lag documents; beyond the bound the oldest are dropped (the sink stayed down too long)."""
        for document in documents:
            if len(self.lag) >= self.pending_lag_documents:
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
        made = [self.documents.make(window, latest) for window in windows]
        documents = [document for document, _fields in made]
        started = time.perf_counter()
        try:
            self.sink.write(documents + lags)
        except SinkError as exc:
            metrics.SINK_FAILURES.labels("elasticsearch").inc()
            self.delay = self.backoff.next_delay()
            self._retry_at = time.monotonic() + self.delay
            logger.warning(
                "sink_write_failed",
                extra={
                    "documents": len(documents) + len(lags),
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
        for window, (_document, fields) in zip(windows, made, strict=True):
            self.reporter.written(window, fields)
        self.backoff.reset()
        self.delay = 0.0
        self._resume()
        return True

    def forget(self, partitions: Sequence[int]) -> int:
        """Drop the unwritten windows of ``partitions`` (their next owner re-observes them)."""
        before = len(self.windows)
        self.windows = [w for w in self.windows if w.partition not in partitions]
        return before - len(self.windows)

    def pause_new(self, partitions: list[TopicPartition]) -> None:
        """Newly assigned partitions start paused while the sink refuses writes."""
        if self.paused and partitions:
            self.consumer.client.pause(partitions)

    def _commit(self, windows: list[ClosedWindow]) -> None:
        # Windows of one partition are written in order, so the last one holds the committed position.
        positions: dict[int, int] = {}
        for window in windows:
            positions[window.partition] = window.end_offset + 1
        topic = self.documents.origin.topic
        owned = self.ownership.assigned
        offsets = [TopicPartition(topic, p, o) for p, o in positions.items() if p in owned]
        if not offsets:
            return
        # Asynchronous, its result reported to commit_result while the loop consumes: a synchronous commit
        # that waits for a group coordinator can hold the loop (and the renewal of a client that lost its
        # broker) for as long as the coordinator stays away.
        try:
            self.consumer.client.commit(offsets=offsets, asynchronous=True)
        except Exception as exc:  # noqa: BLE001 - a lost commit only means a replay that overwrites
            metrics.COMMIT_FAILURES.inc()
            logger.warning("commit_failed", extra={"offsets": positions, "error": str(exc)})

    def _owned(self) -> list[TopicPartition]:
        return [TopicPartition(self.documents.origin.topic, p) for p in self.ownership.sorted()]

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            metrics.PAUSED.set(1)
            logger.info("consumption_paused", extra={"partitions": self.ownership.sorted()})
        if self.ownership.assigned:
            self.consumer.client.pause(self._owned())

    def _resume(self) -> None:
        if self.paused:
            self.paused = False
            metrics.PAUSED.set(0)
            if self.ownership.assigned:
                self.consumer.client.resume(self._owned())
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
