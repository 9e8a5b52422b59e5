"""Prometheus metrics of the profile publisher (served at ``/metrics`` on the app port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REJECT_REASONS = (
    "unauthorized",
    "forbidden",
    "unsupported_media_type",
    "missing_metadata",
    "invalid_metadata",
    "too_large",
    "empty",
    "client_disconnected",
)

UPLOADS = Counter(
    "profile_publisher_uploads_total",
    "Reports accepted; result=created for a new report, replaced for a repeated idempotency key.",
    ["result"],
)
REJECTS = Counter("profile_publisher_rejects_total", "Uploads refused, by reason.", ["reason"])
UPLOADED_BYTES = Counter("profile_publisher_uploaded_bytes_total", "Bytes of accepted report bodies.")
UPLOAD_SECONDS = Histogram(
    "profile_publisher_upload_duration_seconds",
    "Time from request start to a stored report.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STORED_BYTES = Gauge("profile_publisher_stored_bytes", "Bytes of the reports kept in the store.")
REPORTS_KEPT = Gauge("profile_publisher_reports", "Reports kept in the store.")
STORAGE_ERRORS = Counter(
    "profile_publisher_storage_errors_total", "Failed file operations in the store.", ["operation"]
)
RETENTION_REMOVALS = Counter(
    "profile_publisher_retention_removals_total",
    "Reports removed by retention, by the limit that removed them.",
    ["reason"],
)
INDEX_WRITES = Counter(
    "profile_publisher_index_writes_total", "Metadata writes done in Elasticsearch.", ["op"]
)
INDEX_FAILURES = Counter(
    "profile_publisher_index_failures_total", "Failed Elasticsearch writes (retried later)."
)
INDEX_PENDING = Gauge(
    "profile_publisher_index_pending", "Metadata writes persisted and not yet done in Elasticsearch."
)

for _reason in REJECT_REASONS:
    REJECTS.labels(reason=_reason)
for _result in ("created", "replaced"):
    UPLOADS.labels(result=_result)
for _limit in ("count", "age", "bytes"):
    RETENTION_REMOVALS.labels(reason=_limit)
for _op in ("index", "delete"):
    INDEX_WRITES.labels(op=_op)
