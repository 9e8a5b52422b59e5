"""Prometheus metrics of the visits writer (served on its own ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from streamwatch_visits_writer.schema import REASONS

ROWS_WRITTEN = Counter("visits_writer_rows_written_total", "Visits appended to the visits Delta table.")
DEAD_LETTERS = Counter(
    "visits_writer_dead_letters_total",
    "Records appended to the dead-letter Delta table, by reason.",
    ["reason"],
)
BATCHES = Counter(
    "visits_writer_batches_total", "Micro-batches processed (written or found already committed)."
)
BATCHES_REPLAYED = Counter(
    "visits_writer_batches_replayed_total",
    "Appends skipped because the batch was already committed to the table (replay after a restart).",
    ["table"],
)
BATCH_FAILURES = Counter(
    "visits_writer_batch_failures_total", "Micro-batches that failed (the query then stops)."
)
BATCH_SECONDS = Histogram(
    "visits_writer_batch_seconds",
    "Time spent in the foreachBatch function (parse, write, simulated latency).",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120),
)

for _reason in REASONS:
    DEAD_LETTERS.labels(reason=_reason)
for _table in ("visits", "visits_dead_letters"):
    BATCHES_REPLAYED.labels(table=_table)
QUERY_FAILURES = Counter(
    "visits_writer_query_failures_total", "Times the streaming job failed: at start-up or by a query error."
)
TABLE_ERRORS = Counter(
    "visits_writer_table_errors_total",
    "Tables the writer could not use, by reason: incompatible (another schema), unreachable (the store).",
    ["reason"],
)
for _reason in ("incompatible", "unreachable"):
    TABLE_ERRORS.labels(reason=_reason)
