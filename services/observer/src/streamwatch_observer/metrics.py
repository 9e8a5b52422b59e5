"""Prometheus metrics of the observer, served on ``/metrics`` by the ops server.

``observer_lag_offsets{spark_job,topic,partition}`` is what the lag alert reads; the topic label is the
job's source topic (``visits``): the job's lag, which more observer replicas cannot lower. ``spark_job``
names the job (the observed one, or a watched one: ``jobs``); not ``job``, which Prometheus' scrape sets.
``observer_consumer_lag_offsets{topic,partition}`` is the observer group's own lag on the observed topic
(``processed_visits``), the one to scale observer replicas on. Each replica exports only the partitions
it owns, so every series has one source.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

LAG_OFFSETS = Gauge(
    "observer_lag_offsets",
    "Records of the source topic not yet committed by the job, per partition.",
    ["spark_job", "topic", "partition"],
)
LAG_SECONDS = Gauge(
    "observer_lag_seconds",
    "Age of the oldest record the job has not committed yet (0 when caught up); absent while"
    " its committed position is unknown.",
    ["spark_job", "topic", "partition"],
)
LAG_STATUS = Gauge(
    "observer_lag_status",
    "1 for the current lag status of a partition"
    " (ok, not_started, checkpoint_damaged, checkpoint_unreadable, new_partition, unknown).",
    ["spark_job", "topic", "partition", "status"],
)
LAG_EVALUATION = Gauge(
    "observer_lag_evaluation",
    "1 for the Burrow-style evaluation of a partition over the lag evaluation window"
    " (ok, warn, stall, stop, rewind); absent while the lag status is not ok.",
    ["spark_job", "topic", "partition", "status"],
)
CONSUMER_LAG = Gauge(
    "observer_consumer_lag_offsets",
    "Records of the observed topic past the observer group's committed offset, per partition: not yet"
    " observed and written (open windows included), as Kafka's tools and KEDA count a group's lag; absent"
    " while unknown.",
    ["topic", "partition"],
)
RECORDS = Counter("observer_records_total", "Records observed in written windows.", ["topic", "partition"])
UNPARSEABLE = Counter(
    "observer_unparseable_records_total",
    "Records that are not a JSON object or have a wrongly typed required field.",
    ["topic", "partition"],
)
DUPLICATES = Counter(
    "observer_duplicate_records_total",
    "Records whose id was already seen in the same window.",
    ["topic", "partition"],
)
INVALID = Counter(
    "observer_invalid_values_total",
    "Null, missing or empty values per field (flattened name); required=true for the required fields.",
    ["topic", "field", "required"],
)
FIELD_DRIFT = Gauge(
    "observer_field_drift",
    "Drift of a field (Jensen-Shannon distance of its values, or change of its null share) between the"
    " partition's last written window and the one before; fields capped like the null counts.",
    ["job", "topic", "partition", "field"],
)
FIELD_DRIFT_REFERENCE = Gauge(
    "observer_field_drift_reference",
    "Drift of a field (scored as observer_field_drift) between the partition's last written window and its"
    " pinned reference (the merged first windows, kept in Elasticsearch); absent while the reference is"
    " being built.",
    ["job", "topic", "partition", "field"],
)
DRIFT_REFERENCE_WINDOWS = Gauge(
    "observer_drift_reference_windows",
    "Windows merged into the partition's pinned drift reference so far (it is pinned at"
    " drift_reference_windows); absent until the reference is loaded from Elasticsearch.",
    ["job", "topic", "partition"],
)
DRIFT_REFERENCE_FAILURES = Counter(
    "observer_drift_reference_failures_total",
    "Drift reference loads and saves that failed (load, save), and saves refused because another owner"
    " stored a newer version (conflict).",
    ["operation"],
)
COUNTED_OFFSET = Gauge(
    "observer_counted_offset",
    "Offset after the partition's last written window: the records counted up to it (the completeness"
    " check compares it with the passthrough's pushed end offset of the same partition).",
    ["topic", "partition"],
)
WINDOWS = Counter("observer_windows_total", "Windows written and committed.", ["topic", "partition"])
WINDOW_DURATION = Histogram(
    "observer_window_duration_seconds",
    "Time to measure one window's quality.",
    buckets=_DURATION_BUCKETS,
)
WRITE_DURATION = Histogram(
    "observer_sink_write_duration_seconds",
    "Time of one successful bulk write of observation documents.",
    buckets=_DURATION_BUCKETS,
)
PROFILE_DURATION = Histogram(
    "observer_profile_duration_seconds",
    "Time to build one profile report (ydata-profiling).",
    buckets=_DURATION_BUCKETS,
)
PROFILES = Counter("observer_profiles_total", "Profile reports delivered.", ["target"])
PROFILE_MERGED = Counter(
    "observer_profile_windows_merged_total",
    "Windows merged into a pending report because the profiler was still busy (back-pressure).",
)
PROFILE_FAILURES = Counter(
    "observer_profile_failures_total",
    "Profile reports that could not be built or delivered after their retries.",
    ["target"],
)
SINK_FAILURES = Counter(
    "observer_sink_failures_total", "Failed write attempts to the observation sink.", ["sink"]
)
LAG_FAILURES = Counter(
    "observer_lag_failures_total",
    "Lag measurements that failed (checkpoint unreadable, broker unreachable, group offsets unanswered).",
    ["reason"],
)
LAG_DOCUMENTS_DROPPED = Counter(
    "observer_lag_documents_dropped_total",
    "Lag documents dropped because the sink stayed unreachable longer than the pending bound.",
)
COMMIT_FAILURES = Counter("observer_commit_failures_total", "Consumer offset commits that failed.")
ASSIGNED = Gauge("observer_assigned_partitions", "Partitions of the observed topic owned by this replica.")
PAUSED = Gauge("observer_paused", "1 while consumption is paused because the sink refuses writes.")
REBALANCE_FAILURES = Counter(
    "observer_rebalance_failures_total",
    "Rebalance callbacks (assign, revoke, lost) that failed; the replica then stops and is restarted.",
    ["callback"],
)
