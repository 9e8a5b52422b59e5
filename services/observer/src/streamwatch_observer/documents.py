"""Observation documents and their deterministic ids: a replayed window or lag bucket overwrites itself.

A window's id names its job, topic, partition and offset range; a lag document's id names its job,
source partition and time bucket, so two replicas (or a restart) writing the same observation produce
one document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamwatch_observer.fields import reported_counts, reported_scores, safe_name
from streamwatch_observer.lag import PartitionLag
from streamwatch_observer.window import ClosedWindow

Document = tuple[str, dict[str, Any]]
"""An observation document and its id."""


@dataclass(frozen=True)
class Origin:
    """Who observed what: the job, the observed and the source topic, and the replica, in every document."""

    job: str
    topic: str
    source_topic: str
    replica: str


@dataclass(frozen=True)
class ReportedFields:
    """A window's per-field numbers as reported, in its document and its metrics alike (computed once per
    window by :func:`reported_fields`)."""

    invalid: dict[str, int]
    """Null-or-empty count per required field (its own name)."""
    null_counts: dict[str, int]
    """Null-or-empty count per safe field name, at most the reported number of names."""
    left_out: int
    drift: dict[str, float]
    drift_reference: dict[str, float]


def reported_fields(window: ClosedWindow, required: Sequence[str], limit: int) -> ReportedFields:
    """The window's counts and scores of the fields reported one by one (required first, ``limit`` names)."""
    q = window.quality
    null_counts, left_out = reported_counts(q.null_counts, list(required), limit)
    return ReportedFields(
        invalid={name: q.invalid(name) for name in required},
        null_counts=null_counts,
        left_out=left_out,
        drift=reported_scores(window.drift, null_counts),
        drift_reference=reported_scores(window.drift_reference, null_counts),
    )


@dataclass(frozen=True)
class WindowDocuments:
    """Makes the documents of this replica's windows: who observed them, which fields are reported."""

    origin: Origin
    required_fields: tuple[str, ...]
    max_reported_fields: int

    def make(self, window: ClosedWindow, latest_lag: Mapping[int, int]) -> tuple[Document, ReportedFields]:
        """The window's document and the reported fields it holds (its metrics report the same)."""
        fields = reported_fields(window, self.required_fields, self.max_reported_fields)
        return window_document(self.origin, window, fields, latest_lag), fields


def iso(moment: datetime) -> str:
    """UTC, milliseconds, ``Z``: the shape of every date field of the index."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def window_id(job: str, topic: str, partition: int, start_offset: int, end_offset: int) -> str:
    return f"{job}-{topic}-{partition}-{start_offset}-{end_offset}"


def lag_id(job: str, partition: int, bucket: int) -> str:
    return f"{job}-lag-{partition}-{bucket}"


def window_document(
    origin: Origin, window: ClosedWindow, fields: ReportedFields, latest_lag: Mapping[int, int]
) -> Document:
    """The ``window`` document: quality counts of one offset range, with the lag known when written."""
    q = window.quality
    drift, drift_reference = fields.drift, fields.drift_reference
    doc: dict[str, Any] = {
        "@timestamp": iso(window.window_end),
        "observed_at": iso(datetime.now(UTC)),
        "doc_type": "window",
        "job": origin.job,
        "topic": origin.topic,
        "source_topic": origin.source_topic,
        "partition": window.partition,
        "start_offset": window.start_offset,
        "end_offset": window.end_offset,
        "window_start": iso(window.window_start),
        "window_end": iso(window.window_end),
        "all_events": q.records,
        "unparseable": q.unparseable,
        "duplicates": q.duplicates,
        "invalid_records": q.invalid_records,
        "null_counts": fields.null_counts,
        "null_counts_left_out": fields.left_out,
        # Drift against the partition's previous window, per reported field (absent: no score given).
        "drift": drift,
        "drift_max": max(drift.values()) if drift else None,
        # Drift against the partition's pinned reference (absent while it is built, see ``reference``).
        "drift_reference": drift_reference,
        "drift_reference_max": max(drift_reference.values()) if drift_reference else None,
        "lag_per_partition": {str(p): lag for p, lag in sorted(latest_lag.items())},
        "replica": origin.replica,
        "measure_seconds": round(window.measure_seconds, 4),
    }
    for name, count in fields.invalid.items():
        doc[f"invalid_{safe_name(name)}"] = count
    doc_id = window_id(origin.job, origin.topic, window.partition, window.start_offset, window.end_offset)
    return doc_id, doc


def lag_document(origin: Origin, lag: PartitionLag, bucket: int, interval_seconds: float) -> Document:
    """The ``lag`` document of one source partition in one lag bucket (``bucket`` times the interval)."""
    moment = datetime.fromtimestamp(bucket * interval_seconds, tz=UTC)
    doc = {
        "@timestamp": iso(moment),
        "observed_at": iso(datetime.now(UTC)),
        "doc_type": "lag",
        "job": origin.job,
        "topic": origin.source_topic,
        "partition": lag.partition,
        "status": lag.status,
        "evaluation": lag.evaluation,
        "lag_offsets": lag.lag_offsets,
        "committed_offset": lag.committed_offset,
        "end_offset": lag.end_offset,
        "lag_seconds": None if lag.lag_seconds is None else round(lag.lag_seconds, 3),
        "batch_id": lag.batch_id,
        "replica": origin.replica,
    }
    return lag_id(origin.job, lag.partition, bucket), doc
