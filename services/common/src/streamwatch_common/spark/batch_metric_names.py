"""The gauge names each job pushes a micro-batch's metrics under, their help texts, and the bucket bounds of
the duration histogram (:mod:`streamwatch_common.spark.batch_metrics` says what a batch reports,
:mod:`streamwatch_common.spark.listener` pushes it).

The visits writer keeps the seed's names (:data:`VISITS_SYNC`, ``visits_sync_duration`` in milliseconds,
what the SLA alert reads); every other job pushes the job-neutral :data:`STREAMING_BATCH` names, told
apart by the Pushgateway's ``job`` label.
"""

from __future__ import annotations

from dataclasses import dataclass

# Help text of every name a job may push (the names of VISITS_SYNC and STREAMING_BATCH below).
HELP = {
    "visits_sync_duration": "Duration of the last micro-batch in milliseconds.",
    "visits_sync_batch_seconds": "Durations of every micro-batch since the job started, in seconds.",
    "visits_sync_input_rows": "Rows read by the last micro-batch.",
    "visits_sync_input_rows_per_second": "Input rate of the last micro-batch (rows/s).",
    "visits_sync_processed_rows_per_second": "Processing rate of the last micro-batch (rows/s).",
    "visits_sync_batch_id": "Id of the last micro-batch.",
    "visits_sync_idle_heartbeat_seconds": "Unix time of the last idle trigger.",
    "visits_sync_source_end_offset": "End offset (exclusive) of the last micro-batch per source partition.",
    "visits_sync_offsets_behind_latest_min": "Fewest offsets a source partition was behind its newest "
    "offset at the end of the last micro-batch.",
    "visits_sync_offsets_behind_latest_avg": "Mean offsets the source partitions were behind their newest "
    "offsets at the end of the last micro-batch.",
    "visits_sync_offsets_behind_latest_max": "Most offsets a source partition was behind its newest "
    "offset at the end of the last micro-batch.",
    "visits_sync_observed_null_values": "Records of the last micro-batch whose required field is null or "
    "blank (DataFrame.observe, opt-in).",
    "streaming_batch_duration_seconds": "Duration of the last micro-batch in seconds.",
    "streaming_batch_seconds": "Durations of every micro-batch since the job started, in seconds.",
    "streaming_batch_input_rows": "Rows read by the last micro-batch.",
    "streaming_batch_input_rows_per_second": "Input rate of the last micro-batch (rows/s).",
    "streaming_batch_processed_rows_per_second": "Processing rate of the last micro-batch (rows/s).",
    "streaming_batch_id": "Id of the last micro-batch.",
    "streaming_batch_idle_heartbeat_seconds": "Unix time of the last idle trigger.",
    "streaming_batch_source_end_offset": "End offset (exclusive) of the last micro-batch per source "
    "partition.",
    "streaming_batch_offsets_behind_latest_min": "Fewest offsets a source partition was behind its newest "
    "offset at the end of the last micro-batch.",
    "streaming_batch_offsets_behind_latest_avg": "Mean offsets the source partitions were behind their "
    "newest offsets at the end of the last micro-batch.",
    "streaming_batch_offsets_behind_latest_max": "Most offsets a source partition was behind its newest "
    "offset at the end of the last micro-batch.",
    "streaming_batch_observed_null_values": "Records of the last micro-batch whose field is null or blank "
    "(DataFrame.observe, opt-in).",
}


@dataclass(frozen=True)
class BatchMetricNames:
    """The names one job's batch metrics are pushed under, and the duration's unit."""

    duration: str
    duration_in_seconds: bool
    # A histogram of every batch's duration: the gauge holds only the last batch, and a slow batch
    # between two scrapes would go unseen.
    duration_histogram: str
    input_rows: str
    input_rows_per_second: str
    processed_rows_per_second: str
    batch_id: str
    idle_heartbeat: str
    source_end_offset: str
    offsets_behind_latest_min: str
    offsets_behind_latest_avg: str
    offsets_behind_latest_max: str
    observed_null_values: str


# The seed's names, kept for the visits writer alone: its SLA alert and dashboard read them.
VISITS_SYNC = BatchMetricNames(
    duration="visits_sync_duration",
    duration_in_seconds=False,
    duration_histogram="visits_sync_batch_seconds",
    input_rows="visits_sync_input_rows",
    input_rows_per_second="visits_sync_input_rows_per_second",
    processed_rows_per_second="visits_sync_processed_rows_per_second",
    batch_id="visits_sync_batch_id",
    idle_heartbeat="visits_sync_idle_heartbeat_seconds",
    source_end_offset="visits_sync_source_end_offset",
    offsets_behind_latest_min="visits_sync_offsets_behind_latest_min",
    offsets_behind_latest_avg="visits_sync_offsets_behind_latest_avg",
    offsets_behind_latest_max="visits_sync_offsets_behind_latest_max",
    observed_null_values="visits_sync_observed_null_values",
)
# Any other job: one set of names for all, the Pushgateway's ``job`` label says which job pushed.
STREAMING_BATCH = BatchMetricNames(
    duration="streaming_batch_duration_seconds",
    duration_in_seconds=True,
    duration_histogram="streaming_batch_seconds",
    input_rows="streaming_batch_input_rows",
    input_rows_per_second="streaming_batch_input_rows_per_second",
    processed_rows_per_second="streaming_batch_processed_rows_per_second",
    batch_id="streaming_batch_id",
    idle_heartbeat="streaming_batch_idle_heartbeat_seconds",
    source_end_offset="streaming_batch_source_end_offset",
    offsets_behind_latest_min="streaming_batch_offsets_behind_latest_min",
    offsets_behind_latest_avg="streaming_batch_offsets_behind_latest_avg",
    offsets_behind_latest_max="streaming_batch_offsets_behind_latest_max",
    observed_null_values="streaming_batch_observed_null_values",
)

# Bucket bounds of the duration histogram: from a quick batch to one a slow sink stretches to minutes.
DURATION_BUCKETS_SECONDS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


def duration_buckets(sla_seconds: float | None) -> tuple[float, ...]:
    """The histogram's bucket bounds, the job's SLA among them: the share of batches over the SLA is then
    read from one bucket exactly, not interpolated."""
    bounds = set(DURATION_BUCKETS_SECONDS)
    if sla_seconds is not None:
        bounds.add(sla_seconds)
    return tuple(sorted(bounds))
