"""Pending observations, one bulk write, then the commit: offsets move only after the documents are stored.

Measured windows and lag documents wait in the pending buffer until one bulk write stores them; only
then are the windows' offsets committed (end offset + 1 of the written window), so a crash replays at
most the unwritten windows, whose deterministic ids make the replay overwrite.

The bulk write runs on the writer's own thread while the consume loop goes on: waiting for
Elasticsearch to answer (it syncs its log on every request) was the loop's largest wait. One write is
in flight at a time; the windows measured meanwhile go into the next one. The loop finishes a write
(:meth:`ObservationWriter.collect`), so commits, pauses and resumes stay on the consumer's thread, and it
waits for the write when too many windows queue behind it, so a slow sink still slows consumption.
While the sink refuses writes, the owned partitions are paused and writes are retried after an
exponential back-off: memory holds at most the open windows, the windows being measured, the measured
windows' statistics and one consume batch, however long the outage lasts. Lag documents are bounded
separately (the oldest are dropped and counted). What a written window counted is exported by
``window_metrics``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

from confluent_kafka import KafkaError, TopicPartition

from streamwatch_common.backoff import Backoff
from streamwatch_common.errors import SinkError
from streamwatch_observer import metrics
from streamwatch_observer.documents import Document, ReportedFields, WindowDocuments
from streamwatch_observer.ownership import Ownership
from streamwatch_observer.window import ClosedWindow
from streamwatch_observer.window_metrics import WindowMetrics

logger = logging.getLogger(__name__)

_FIRST_BACKOFF = 0.5
# Measured windows (statistics only: their raw values are freed once measured) that may wait behind the
# write in flight before the consume loop waits for it.
MAX_WAITING_WINDOWS = 32


@dataclass(frozen=True)
class _Flight:
    """One bulk write on the writer's thread: its windows, their documents' reported fields and the lag
    documents it carries (taken out of the queue; put back if the write is refused)."""

    result: Future[float]
    windows: list[ClosedWindow]
    made: list[tuple[Document, ReportedFields]]
    lag: list[Document]


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
        writer.collect()                  # the write in flight, if over: commit, or back off
        if writer.due(time.monotonic()):
            writer.begin()                # on the writer's thread
        writer.flush()                    # rebalance, shutdown: write everything pending and wait
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
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write")
        self._flight: _Flight | None = None

    @property
    def pending(self) -> bool:
        return bool(self.windows or self.lag or (self._flight is not None and self._flight.lag))

    @property
    def writing(self) -> bool:
        """A bulk write is in flight on the writer's thread."""
        return self._flight is not None

    @property
    def full(self) -> bool:
        """So many windows wait behind the write in flight that the loop should wait for it (a slow sink
        slows consumption instead of piling windows up)."""
        return self._flight is not None and len(self.windows) >= MAX_WAITING_WINDOWS

    def add_windows(self, windows: Sequence[ClosedWindow]) -> None:
        self.windows.extend(windows)

    def add_lag(self, documents: Sequence[Document]) -> None:
        """Queue lag documents; beyond the bound the oldest are dropped (the sink stayed down too long)."""
        for document in documents:
            self._queue_lag(document)

    def due(self, now: float) -> bool:
        """Something is pending, no write is in flight and no back-off is running (or it has run out)."""
        return (
            self._flight is None
            and bool(self.windows or self.lag)
            and (not self.paused or now >= self._retry_at)
        )

    def begin(self) -> None:
        """Start one bulk write of everything pending on the writer's thread; :meth:`collect` (or
        :meth:`settle`) commits after it succeeds. Nothing happens while a write is in flight."""
        if self._flight is not None or not (self.windows or self.lag):
            return
        windows = list(self.windows)
        lag = list(self.lag)
        self.lag.clear()
        latest = self.ownership.latest_lag
        made = [self.documents.make(window, latest) for window in windows]
        documents = [document for document, _fields in made] + lag
        self._flight = _Flight(self._thread.submit(self._timed_write, documents), windows, made, lag)

    def collect(self) -> bool | None:
        """Finish the write in flight if it is over: True when it succeeded (and its windows are committed),
        False when the sink refused it (back-off and pause), None when none is over."""
        if self._flight is None or not self._flight.result.done():
            return None
        return self.settle()

    def settle(self) -> bool:
        """Wait for the write in flight and finish it; True when none was in flight."""
        flight, self._flight = self._flight, None
        if flight is None:
            return True
        try:
            elapsed = flight.result.result()
        except SinkError as exc:
            self._refused(exc, flight)
            return False
        metrics.WRITE_DURATION.observe(elapsed)
        del self.windows[: len(flight.windows)]
        self._commit(flight.windows)
        for window, (_document, fields) in zip(flight.windows, flight.made, strict=True):
            self.reporter.written(window, fields)
        self.backoff.reset()
        self.delay = 0.0
        self._resume()
        return True

    def flush(self) -> bool:
        """Write everything pending and wait for it (rebalance and shutdown); commit after success."""
        if not self.settle():
            return False
        self.begin()
        return self.settle()

    def close(self) -> None:
        """Wait for the write in flight (its result is dropped: its windows were not committed) and stop
        the writer's thread."""
        self._thread.shutdown(wait=True)

    def _timed_write(self, documents: list[Document]) -> float:
        started = time.perf_counter()
        self.sink.write(documents)
        return time.perf_counter() - started

    def _refused(self, exc: SinkError, flight: _Flight) -> None:
        metrics.SINK_FAILURES.labels("elasticsearch").inc()
        # The refused lag documents go back ahead of those queued meanwhile, within the bound.
        queued, self.lag = list(self.lag), deque()
        for document in [*flight.lag, *queued]:
            self._queue_lag(document)
        documents = len(flight.windows) + len(flight.lag)
        self.delay = self.backoff.next_delay()
        self._retry_at = time.monotonic() + self.delay
        logger.warning(
            "sink_write_failed",
            extra={
                "documents": documents,
                "windows": len(flight.windows),
                "retry_in_seconds": self.delay,
                "error": str(exc),
            },
        )
        self._pause()

    def _queue_lag(self, document: Document) -> None:
        if len(self.lag) >= self.pending_lag_documents:
            self.lag.popleft()
            metrics.LAG_DOCUMENTS_DROPPED.inc()
        self.lag.append(document)

    def forget(self, partitions: Sequence[int]) -> int:
        """Drop the unwritten windows of ``partitions`` (their next owner re-observes them), after the
        write in flight is over (its windows are committed or stay pending)."""
        self.settle()
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
