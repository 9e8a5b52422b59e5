"""The passthrough's own metrics on ``/metrics`` (batch metrics also go to the Pushgateway)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCHES = Counter("passthrough_batches_total", "Micro-batches copied to the target topic.")
RECORDS = Counter("passthrough_records_total", "Records copied to the target topic.")
BATCH_FAILURES = Counter(
    "passthrough_batch_failures_total",
    "Micro-batches whose write failed (Spark retries them from the checkpoint).",
)
QUERY_FAILURES = Counter(
    "passthrough_query_failures_total", "Streaming queries that terminated with an error."
)
BATCH_WRITE_SECONDS = Histogram(
    "passthrough_batch_write_seconds",
    "Time to write one micro-batch to the target topic.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
QUERY_ACTIVE = Gauge("passthrough_query_active", "1 while the streaming query runs.")
LAST_BATCH_ID = Gauge("passthrough_last_batch_id", "Id of the last micro-batch written.")
