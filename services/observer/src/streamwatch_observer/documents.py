"""Observation documents and their deterministic ids: a replayed window or lag bucket overwrites itself.

A window's id names its job, topic, partition and offset range; a lag document's id names its job,
source partition and time bucket, so two replicas (or a restart) writing the same observation produce
one document.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streamwatch_observer.fields import reported_counts, reported_scores, safe_name
from streamwatch_observer.lag import PartitionLag
from streamwatch_observer.settings import ObserverSettings
from streamwatch_observer.window import ClosedWindow

Document = tuple[str, dict[str, Any]]
"""An observation document and its id."""


def iso(moment: datetime) -> str:
    """UTC, milliseconds, ``Z``: the shape of every date field of the index."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def window_id(job: str, topic: str, partition: int, start_offset: int, end_offset: int) -> str:
    return f"{job}-{topic}-{partition}-{start_offset}-{end_offset}"


def lag_id(job: str, partition: int, bucket: int) -> str:
    return f"{job}-lag-{partition}-{bucket}"


def window_document(
    settings: ObserverSettings, window: ClosedWindow, latest_lag: Mapping[int, int]
) -> Document:
    """The ``window`` document: quality counts of one offset range, with the lag known when written."""
    s = settings
    q = window.quality
    null_counts, left_out = reported_counts(q.null_counts, s.required_fields, s.max_reported_fields)
    drift = reported_scores(window.drift, null_counts)
    drift_reference = reported_scores(window.drift_reference, null_counts)
    doc: dict[str, Any] = {
        "@timestamp": iso(window.window_end),
        "observed_at": iso(datetime.now(UTC)),
        "doc_type": "window",
        "job": s.job,
        "topic": s.topic,
        "source_topic": s.source_topic,
        "partition": window.partition,
        "start_offset": window.start_offset,
        "end_offset": window.end_offset,
        "window_start": iso(window.window_start),
        "window_end": iso(window.window_end),
        "all_events": q.records,
        "unparseable": q.unparseable,
        "duplicates": q.duplicates,
        "invalid_records": q.invalid_records,
        "null_counts": null_counts,
        "null_counts_left_out": left_out,
        # Drift against the partition's previous window, per reported field (absent: no score given).
        "drift": drift,
        "drift_max": max(drift.values()) if drift else None,
        # Drift against the partition's pinned reference (absent while it is built, see ``reference``).
        "drift_reference": drift_reference,
        "drift_reference_max": max(drift_reference.values()) if drift_reference else None,
        "lag_per_partition": {str(p): lag for p, lag in sorted(latest_lag.items())},
        "replica": s.replica_name,
        "measure_seconds": round(window.measure_seconds, 4),
    }
    for name in s.required_fields:
        doc[f"invalid_{safe_name(name)}"] = q.invalid(name)
    return window_id(s.job, s.topic, window.partition, window.start_offset, window.end_offset), doc


def lag_document(settings: ObserverSettings, lag: PartitionLag, bucket: int) -> Document:
    """The ``lag`` document of one source partition in one lag bucket (bucket times the interval)."""
    s = settings
    moment = datetime.fromtimestamp(bucket * s.lag_interval_seconds, tz=UTC)
    doc = {
        "@timestamp": iso(moment),
        "observed_at": iso(datetime.now(UTC)),
        "doc_type": "lag",
        "job": s.job,
        "topic": s.source_topic,
        "partition": lag.partition,
        "status": lag.status,
        "evaluation": lag.evaluation,
        "lag_offsets": lag.lag_offsets,
        "committed_offset": lag.committed_offset,
        "end_offset": lag.end_offset,
        "lag_seconds": None if lag.lag_seconds is None else round(lag.lag_seconds, 3),
        "batch_id": lag.batch_id,
        "replica": s.replica_name,
    }
    return lag_id(s.job, lag.partition, bucket), doc
