"""The observer's consume loop: windows per owned partition → measured on a worker → written → committed.

One thread owns the consumer; a second measures closed windows (see ``measure``), a third makes the bulk
writes (see ``writer``), a fourth measures the observed jobs' lag (see ``lag_worker``; the loop reports
what it measured, with the group's own lag, which it asks of its consumer itself).
Commits happen in the loop's thread, strictly after the measurement and the bulk write.

Rebalances (eager assignor): revoked partitions get one bounded attempt to write what is complete and
commit it; open windows are forgotten and re-observed by the next owner from the committed offset, so
windows of consecutive owners meet exactly at the commit. Cooperative-sticky is not used:
``skip_written`` re-assigns with ``assign()`` (the eager call) and the eager revoke-everything keeps that
hand-over simple; its cost is re-reading open windows on every rebalance. Which replica reports the lag
of a partition is decided in ``ownership``; the group's own lag on the observed topic (``consumer_lag``)
is measured at the same interval, for the partitions the replica owns. A partition's previous window
(window-to-window drift) is forgotten with it; its pinned drift reference is kept in Elasticsearch and
loaded by the next owner on the measuring worker (``reference``).

A group consumer left holding no broker, or with its group coordinator unknown past its session timeout
(``streamwatch_common.kafka_health``), is replaced by a new one through its handle
(``streamwatch_common.kafka_renewable``), which joins the group afresh; what the old one owned is
re-observed from the committed offsets, as after a lost assignment. Nothing here keeps the consumer: the
loop, the writer and the group-lag measurement ask the handle at each use.

Usage::

    Observer(settings=s, shutdown=sd, consumer_config=c, sink=sink, probe=probe, profiler=profiler).run()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from streamwatch_common.kafka_renewable import RenewableClient
from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_observer.consumer_lag import ConsumerLag
from streamwatch_observer.documents import Origin, WindowDocuments, lag_document
from streamwatch_observer.drift import DriftTracker
from streamwatch_observer.jobs import owner_of
from streamwatch_observer.lag import LagProbe, PartitionLag, topic_partitions
from streamwatch_observer.lag_worker import LagRound, LagWorker
from streamwatch_observer.measure import WindowMeasurer
from streamwatch_observer.ownership import Ownership
from streamwatch_observer.profiler import Profiler
from streamwatch_observer.quality import QualityMeter
from streamwatch_observer.rebalance import guarded, skip_written
from streamwatch_observer.reference import ReferenceTracker
from streamwatch_observer.settings import ObserverSettings
from streamwatch_observer.sink import ObservationSink
from streamwatch_observer.window import OpenWindows
from streamwatch_observer.window_metrics import WindowMetrics
from streamwatch_observer.writer import ObservationWriter

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.5
_BUSY_POLL_SECONDS = 0.01
_SHUTDOWN_WRITE_SECONDS = 10.0


class Observer:
    """Observes the owned partitions of one topic until shutdown is requested."""

    def __init__(
        self,
        *,
        settings: ObserverSettings,
        shutdown: GracefulShutdown,
        consumer_config: dict[str, Any],
        sink: ObservationSink,
        probe: LagProbe,
        profiler: Profiler | None,
        watched: Sequence[LagProbe] = (),
    ) -> None:
        self.settings = settings
        self.shutdown = shutdown
        self.consumer = RenewableClient(
            "observer-consumer", consumer_config, Consumer, on_renew=self._rejoin, coordinator=True
        )
        self.sink = sink
        self.probe = probe
        self.origin = Origin(settings.job, settings.topic, settings.source_topic, settings.replica_name)
        # Watched jobs (``jobs``): lag only, their source partitions spread by ``owner_of``.
        self.watched = [
            (Origin(p.job, settings.topic, p.source_topic, settings.replica_name), p) for p in watched
        ]
        self._observed_partitions: int | None = None
        # The group's own lag on the observed topic (what more replicas lower), beside the job's lag.
        reset = str(consumer_config.get("auto.offset.reset", "earliest"))
        self.consumer_lag = ConsumerLag(settings.topic, auto_offset_reset=reset)
        self.ownership = Ownership(settings.lag_interval_seconds, settings.replica_name)
        self.windows = OpenWindows(settings.window_records)
        meter = QualityMeter(settings.required_fields, settings.id_field, keep_rows=profiler is not None)
        drift = DriftTracker(settings.drift_min_records)
        reference = None
        if settings.drift_reference_windows > 0:
            reference = ReferenceTracker(
                sink,
                job=settings.job,
                topic=settings.topic,
                name=settings.drift_reference_name,
                windows=settings.drift_reference_windows,
                min_records=settings.drift_min_records,
                replica=settings.replica_name,
            )
        self.measurer = WindowMeasurer(meter, profiler, settings.job, drift=drift, reference=reference)
        self.reporter = WindowMetrics(job=settings.job, topic=settings.topic)
        documents = WindowDocuments(
            self.origin, tuple(settings.required_fields), settings.max_reported_fields
        )
        self.writer = ObservationWriter(
            self.consumer,
            sink,
            self.ownership,
            documents,
            self.reporter,
            max_backoff=settings.sink_max_backoff_seconds,
            pending_lag_documents=settings.pending_lag_documents,
        )
        self.lag_worker = LagWorker(self._measure_lag)
        self.subscribed = False
        self._next_lag = 0.0

    def run(self) -> None:
        """Consume, measure and write until shutdown; then write what is complete and leave the group."""
        self.start()
        try:
            while not self.shutdown.requested:
                self.step()
            self._finish()
        finally:
            self.close()

    def start(self) -> None:
        """Join the group; :meth:`step` then does the work."""
        self._subscribe(self.consumer.client)
        self.subscribed = True
        logger.info(
            "observer_subscribed", extra={"topic": self.settings.topic, "group_id": self.settings.group_id}
        )

    def close(self) -> None:
        self.lag_worker.close()
        self.measurer.close()
        self.writer.close()
        self.consumer.client.close()
        logger.info("observer_stopped")

    def _subscribe(self, consumer: Consumer) -> None:
        consumer.subscribe(
            [self.settings.topic],
            on_assign=guarded("assign", self._on_assign),
            on_revoke=guarded("revoke", self._on_revoke),
            on_lost=guarded("lost", self._on_lost),
        )

    def _rejoin(self, old: Consumer, new: Consumer) -> None:
        """The consumer's renew hook: leave the group with the old consumer (revoking what it owns; the
        handle still serves it meanwhile) and join with the new one."""
        self._settle_lag()
        old.close()  # serves the revoke (or lost) callback of whatever it still owned
        if self.ownership.assigned:  # no callback came for these: they are lost with the old consumer
            self._on_lost(old, [TopicPartition(self.settings.topic, p) for p in self.ownership.sorted()])
        self._subscribe(new)

    def step(self) -> None:
        """One round: replace a consumer left without a broker, consume a batch into windows, hand full or
        old windows to the measurer, report a finished lag measurement and start the next when due, finish
        the write in flight and start the next (after a back-off when the sink refused the last one)."""
        self.consumer.renew_if_orphaned(time.monotonic())
        # While a window is measured or written, the consume call returns soon even without records, so
        # its result is written and committed without waiting for the poll's timeout.
        busy = self.measurer.pending or self.writer.writing
        timeout = _BUSY_POLL_SECONDS if busy else _POLL_SECONDS
        messages = self.consumer.client.consume(self.settings.consume_batch, timeout=timeout)
        closed = self.windows.add(messages, self.ownership.assigned) if messages else []
        now = time.monotonic()
        closed += self.windows.due(now, self.settings.window_seconds)
        for window in closed:
            self.measurer.submit(window)
        self.writer.add_windows(self.measurer.done())
        self._report_lag_round(self.lag_worker.done())
        if now >= self._next_lag and not self.lag_worker.running:
            self._next_lag = now + self.settings.lag_interval_seconds
            if self.ownership.assigned:
                self.lag_worker.submit(self.ownership.sorted(), self.ownership.bucket())
        if self.writer.full:
            self.writer.settle()
        self.writer.collect()
        if self.writer.due(time.monotonic()):
            self.writer.begin()

    def _measure_lag(self, owned: list[int], bucket: int) -> LagRound:
        """The lag of the ``owned`` partitions and of the watched jobs' partitions they cover (on the lag
        worker's thread: it touches only the probes, which the loop leaves alone until it has waited for
        the worker; never the group's consumer, whose calls wait for the loop's consume call)."""
        lags = self.probe.measure(owned)
        watched: list[tuple[Origin, list[PartitionLag]]] = []
        if self.watched:
            # The observed topic's partition count, asked once per measurement for every watched job.
            observed = topic_partitions(self.probe.kafka.client, self.settings.topic, self.probe.timeout)
            self._observed_partitions = len(observed) if observed else self._observed_partitions
            watched = [(origin, self._measure_watched(probe, set(owned))) for origin, probe in self.watched]
        return LagRound(bucket, lags, watched, self._observed_partitions)

    def _measure_watched(self, probe: LagProbe, owned: set[int]) -> list[PartitionLag]:
        """A watched job's lag on the source partitions this replica reports (``jobs.owner_of``); when the
        cluster does not say how many partitions there are, the owned numbers, which the watermarks then
        judge (``unknown`` where there is no such partition)."""
        count = self._observed_partitions
        source = topic_partitions(self.probe.kafka.client, probe.source_topic, self.probe.timeout)
        if count is None or source is None:
            partitions = sorted(owned)
        else:
            partitions = [p for p in source if owner_of(p, count) in owned]
            probe.forget(sorted(probe.exported - set(partitions)))  # the topics changed partition counts
        return probe.measure(partitions)

    def _settle_lag(self) -> None:
        """Wait for the lag measurement in flight and report it under the ownership it was measured for,
        before that changes (rebalance, renewal) or the loop ends; the group's own lag is left to the next
        measurement: no new request to the group's consumer in the middle of a rebalance or a renewal."""
        self._report_lag_round(self.lag_worker.wait(), group_lag=False)

    def _report_lag_round(self, measured: LagRound | None, *, group_lag: bool = True) -> None:
        """Report a finished measurement (what this replica may report of its bucket, ``ownership``) with
        the group's own lag on the owned partitions, measured now with the group's consumer (the lag
        worker is idle: the probe's client answers for the newest offsets)."""
        if measured is None:
            return
        bucket = measured.bucket
        lags = self.ownership.reportable(measured.lags, bucket)
        consumer_lag = None
        if group_lag:
            consumer_lag = self.consumer_lag.measure(
                self.consumer.client, self.ownership.sorted(), ends=self.probe.kafka.client
            )
        self._report_lag(self.origin, lags, bucket, consumer_lag_offsets=consumer_lag)
        count = measured.observed_partitions

        def reporter(partition: int) -> int:
            return owner_of(partition, count) if count else partition

        for origin, watched in measured.watched:
            kept = [lag for lag in watched if self.ownership.may_report(reporter(lag.partition), bucket)]
            self._report_lag(origin, kept, bucket)

    def _report_lag(
        self,
        origin: Origin,
        lags: list[PartitionLag],
        bucket: int,
        consumer_lag_offsets: Mapping[int, int | None] | None = None,
    ) -> None:
        interval = self.settings.lag_interval_seconds
        self.writer.add_lag([lag_document(origin, lag, bucket, interval) for lag in lags])
        extra: dict[str, Any] = {
            "spark_job": origin.job,
            "bucket": bucket,
            "lag": {
                str(lag.partition): {
                    "status": lag.status,
                    "evaluation": lag.evaluation,
                    "lag_offsets": lag.lag_offsets,
                    "lag_seconds": lag.lag_seconds,
                }
                for lag in lags
            },
        }
        if consumer_lag_offsets is not None:
            extra["consumer_lag_offsets"] = {str(p): lag for p, lag in consumer_lag_offsets.items()}
        logger.info("lag_measured", extra=extra)

    # --- rebalances (wrapped by ``guarded``) ------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.ownership.gain(tp.partition for tp in partitions)
        skip_written(consumer, partitions, self.sink, self.settings.job, self.settings.topic)
        self.writer.pause_new(partitions)
        self.measurer.prepare([tp.partition for tp in partitions])  # their drift references, on the worker
        self._next_lag = 0.0  # report the new partitions' lag right away

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # One attempt: what is measured and written is committed, the rest is re-observed.
        self._settle_lag()
        self.writer.add_windows(self.measurer.wait())
        if self.writer.windows:
            self.writer.flush()
        self._forget(sorted(tp.partition for tp in partitions), "partitions_revoked")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle_lag()
        self.writer.add_windows(self.measurer.wait())
        self.writer.settle()  # the write in flight: its commit may still land, or is refused
        self._forget(sorted(tp.partition for tp in partitions), "partitions_lost")

    def _forget(self, lost: list[int], event: str) -> None:
        dropped = self.writer.forget(lost)
        self.reporter.forget(lost)  # the next owner exports these partitions' drift and position
        open_records = self.windows.drop(lost)
        self.ownership.lose(lost)
        self.probe.forget(lost)
        count = self._observed_partitions
        for _, probe in self.watched:
            probe.forget([p for p in probe.exported if count is None or owner_of(p, count) in lost])
        self.consumer_lag.forget(lost)
        if self.measurer.drift is not None:
            self.measurer.drift.forget(lost)  # the worker is idle: revoke and lost waited for it
        if self.measurer.reference is not None:
            self.measurer.reference.forget(lost)  # stored in Elasticsearch: the next owner loads it
        extra = {"lost": lost, "owned": self.ownership.sorted(), "unwritten_windows": dropped}
        logger.info(event, extra={**extra, "open_records": open_records})

    def _finish(self) -> None:
        """Measure the open windows and try to write them for a bounded time, then leave the group."""
        for window in self.windows.close_all():
            self.measurer.submit(window)
        self.writer.add_windows(self.measurer.wait())
        self._settle_lag()
        deadline = time.monotonic() + _SHUTDOWN_WRITE_SECONDS
        while self.writer.pending and time.monotonic() < deadline:
            if self.writer.flush():
                break
            time.sleep(min(self.writer.delay, max(0.0, deadline - time.monotonic())))
        if self.writer.windows:
            logger.warning(
                "shutdown_unwritten_windows",
                extra={"windows": len(self.writer.windows), "note": "re-observed after restart"},
            )
