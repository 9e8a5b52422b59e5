"""The metrics and the ``window_written`` line of each stored window, and the removal of a partition's
series when this replica gives it up.

The drift gauges of a partition are those of its last written window: a field without a score there
loses its series, so an old score cannot hold an alert. The counted offset (the completeness check) and
the drift series of a partition leave with it: its next owner exports them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import Gauge

from streamwatch_observer import metrics
from streamwatch_observer.documents import ReportedFields
from streamwatch_observer.fields import safe_name
from streamwatch_observer.window import ClosedWindow

logger = logging.getLogger(__name__)


class WindowMetrics:
    """Exports what each written window counted, per job and observed topic.

    Usage::

        reporter = WindowMetrics(job="passthrough", topic="processed_visits")
        reporter.written(window, reported_fields(window, required, limit))  # after the bulk write
        reporter.forget([0])  # partition revoked: the next owner exports its series
    """

    def __init__(self, *, job: str, topic: str) -> None:
        self.job = job
        self.topic = topic
        # Per drift gauge and partition, the fields whose series this replica exports (see _export_drift).
        self._drift_fields: dict[Gauge, dict[int, set[str]]] = {
            metrics.FIELD_DRIFT: {},
            metrics.FIELD_DRIFT_REFERENCE: {},
        }
        # Partitions whose counted offset this replica exports (dropped with the partition).
        self._counted: set[int] = set()

    def written(self, window: ClosedWindow, fields: ReportedFields) -> None:
        """Count a window that is stored (and its offsets committed)."""
        q = window.quality
        labels = (self.topic, str(window.partition))
        metrics.RECORDS.labels(*labels).inc(q.records)
        metrics.UNPARSEABLE.labels(*labels).inc(q.unparseable)
        metrics.DUPLICATES.labels(*labels).inc(q.duplicates)
        metrics.WINDOWS.labels(*labels).inc()
        metrics.COUNTED_OFFSET.labels(*labels).set(window.end_offset + 1)
        self._counted.add(window.partition)
        required = {safe_name(name) for name in fields.invalid}
        for name, count in fields.null_counts.items():
            metrics.INVALID.labels(self.topic, name, "true" if name in required else "false").inc(count)
        self._export_drift(window.partition, fields.drift, fields.drift_reference)
        logger.info(
            "window_written",
            extra={
                "partition": window.partition,
                "start_offset": window.start_offset,
                "end_offset": window.end_offset,
                "records": q.records,
                "unparseable": q.unparseable,
                "duplicates": q.duplicates,
                "invalid": fields.invalid,
                "measure_seconds": round(window.measure_seconds, 4),
            },
        )

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the drift and counted-offset series of ``partitions`` (their next owner exports them)."""
        for partition in partitions:
            self._export_drift(partition, {}, {})
            if partition in self._counted:
                self._counted.discard(partition)
                metrics.COUNTED_OFFSET.remove(self.topic, str(partition))

    def _export_drift(self, partition: int, previous: dict[str, float], reference: dict[str, float]) -> None:
        """The drift gauges of a partition (against its previous window, against its pinned reference)
        become those of its last written window: a field without a score there (a window below the
        minimum size, a reference still being built, a partition lost) loses its series."""
        for gauge, scores in ((metrics.FIELD_DRIFT, previous), (metrics.FIELD_DRIFT_REFERENCE, reference)):
            exported = self._drift_fields[gauge]
            for name in exported.pop(partition, set()) - set(scores):
                gauge.remove(self.job, self.topic, str(partition), name)
            for name, score in scores.items():
                gauge.labels(self.job, self.topic, str(partition), name).set(score)
            if scores:
                exported[partition] = set(scores)
