"""What the batch-metrics listener reads from a micro-batch progress besides the batch's own numbers: the
source offsets (end offset per partition, offsets behind latest) and a ``DataFrame.observe`` observation.

Pure: progresses are built with pyspark's own ``StreamingQueryProgress.fromJson`` from JSON shaped like
the JVM's, no Spark session is started and nothing is pushed anywhere reachable.
"""

from __future__ import annotations

import json
import logging
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from pyspark.sql.streaming.listener import StreamingQueryProgress

from streamwatch_common.spark.batch_metric_names import STREAMING_BATCH, VISITS_SYNC
from streamwatch_common.spark.batch_metrics import BatchMetrics, OffsetsBehind, offsets_behind, parse_offsets
from streamwatch_common.spark.listener import BatchMetricsPusher, _ProgressAsJson
from streamwatch_dev.process import free_port, wait_until

TOPIC = "visits"


def source(end: Any, latest: Any, metrics: dict[str, str] | None = None) -> dict[str, Any]:
    """A SourceProgress as Spark's JSON has it (offsets as JSON objects, metrics as strings)."""
    return {
        "description": f"KafkaV2[Subscribe[{TOPIC}]]",
        "startOffset": None,
        "endOffset": end,
        "latestOffset": latest,
        "numInputRows": 10,
        "inputRowsPerSecond": 1.0,
        "processedRowsPerSecond": 2.0,
        "metrics": metrics or {},
    }


def progress(sources: list[dict[str, Any]], observed: dict[str, dict[str, Any]] | None = None) -> Any:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "runId": str(uuid.uuid4()),
        "name": "q",
        "timestamp": "2026-11-29T02:00:00.000Z",
        "batchId": 4,
        "batchDuration": 1500,
        "durationMs": {},
        "eventTime": {},
        "stateOperators": [],
        "sources": sources,
        "sink": {"description": "ForeachBatchSink", "numOutputRows": -1, "metrics": {}},
        "numInputRows": 10,
        "inputRowsPerSecond": 1.0,
        "processedRowsPerSecond": 2.0,
    }
    if observed is not None:
        body["observedMetrics"] = observed
    return StreamingQueryProgress.fromJson(json.loads(json.dumps(body)))


def test_offsets_behind_latest_follow_sparks_kafka_source_definition() -> None:
    """The three numbers Spark's JVM Kafka source puts in its metrics (latest minus consumed per partition
    of the latest offsets; min, mean, max) come out of the offsets alone, for a Spark-shaped progress."""
    end = {TOPIC: {"0": 100, "1": 40, "2": 7}}
    latest = {TOPIC: {"0": 300, "1": 120, "2": 7}}
    # What KafkaMicroBatchStream.metrics reports for these offsets (Scala's Long and Double toString).
    spark_metrics = {
        "minOffsetsBehindLatest": "0",
        "maxOffsetsBehindLatest": "200",
        "avgOffsetsBehindLatest": "93.33333333333333",
    }
    metrics = BatchMetrics.from_progress(progress([source(end, latest, spark_metrics)]))
    assert metrics.unreadable == ()
    assert metrics.behind_latest == OffsetsBehind(0, 280 / 3, 200)
    assert metrics.behind_latest is not None
    assert metrics.behind_latest.min == int(spark_metrics["minOffsetsBehindLatest"])
    assert metrics.behind_latest.max == int(spark_metrics["maxOffsetsBehindLatest"])
    assert metrics.behind_latest.avg == float(spark_metrics["avgOffsetsBehindLatest"])
    assert metrics.end_offsets == {(TOPIC, "0"): 100, (TOPIC, "1"): 40, (TOPIC, "2"): 7}


# Recorded from a real run of the passthrough with Spark's JVM Kafka source (spark-sql-kafka 4.2.0,
# tests/passthrough/test_progress_offsets.py[jvm]): 300 and 120 records on two partitions, read 100 per
# trigger; each batch's end offsets and the metrics that source reported for it.
RECORDED_JVM_BATCHES = [
    ({"0": 71, "1": 28}, {"min": "92", "max": "229", "avg": "160.5"}),
    ({"0": 142, "1": 56}, {"min": "64", "max": "158", "avg": "111.0"}),
    ({"0": 213, "1": 84}, {"min": "36", "max": "87", "avg": "61.5"}),
    ({"0": 283, "1": 113}, {"min": "7", "max": "17", "avg": "12.0"}),
    ({"0": 300, "1": 120}, {"min": "0", "max": "0", "avg": "0.0"}),
]


@pytest.mark.parametrize(("end", "reported"), RECORDED_JVM_BATCHES)
def test_computed_values_equal_what_sparks_jvm_source_reported_in_a_real_run(
    end: dict[str, int], reported: dict[str, str]
) -> None:
    spark_metrics = {f"{stat}OffsetsBehindLatest": value for stat, value in reported.items()}
    latest = {TOPIC: {"0": 300, "1": 120}}
    metrics = BatchMetrics.from_progress(progress([source({TOPIC: end}, latest, spark_metrics)]))
    assert metrics.behind_latest == OffsetsBehind(
        int(reported["min"]), float(reported["avg"]), int(reported["max"])
    )


def test_a_partition_only_the_latest_offsets_know_is_left_out() -> None:
    assert offsets_behind({TOPIC: {"0": 5}}, {TOPIC: {"0": 9, "1": 3}, "other": {"0": 1}}) == [4]
    assert OffsetsBehind.of([]) is None


@pytest.mark.parametrize(
    "text",
    [None, "null", "", "not json", "[]", "{}", '{"t": 5}', '{"t": {"x": 1}}', '{"t": {"0": "1"}}',
     '{"t": {"0": true}}', '{"t": {"0": 1.5}}'],
)  # fmt: skip
def test_offsets_that_are_not_topic_partition_offset_objects_are_refused(text: str | None) -> None:
    with pytest.raises(ValueError):
        parse_offsets(text)


def test_parse_offsets_reads_sparks_shape() -> None:
    assert parse_offsets('{"visits": {"0": 13200, "1": 15800}}') == {"visits": {"0": 13200, "1": 15800}}


def test_unreadable_parts_are_listed_and_everything_readable_is_kept() -> None:
    good = source({TOPIC: {"0": 10}}, {TOPIC: {"0": 12}})
    broken_latest = source({"other": {"0": 3}}, "[1, 2]")
    broken_end = source("{not json", {TOPIC: {"1": 1}})
    metrics = BatchMetrics.from_progress(progress([good, broken_latest, broken_end]))
    assert metrics.batch_id == 4 and metrics.input_rows == 10
    assert metrics.end_offsets == {(TOPIC, "0"): 10, ("other", "0"): 3}
    assert metrics.behind_latest == OffsetsBehind(2, 2.0, 2)
    assert [(u.part, u.detail.split(":")[0]) for u in metrics.unreadable] == [
        ("latest_offset", "source 1 (KafkaV2[Subscribe[visits]])"),
        ("end_offset", "source 2 (KafkaV2[Subscribe[visits]])"),
    ]


def test_a_batch_without_latest_offsets_has_no_offsets_behind_and_nothing_unreadable() -> None:
    """Spark reports no latest offset for a batch it runs again from its offset log, the first batch after
    a restart: that is not reported, not unreadable (no warning on every restart)."""
    replayed = BatchMetrics.from_progress(progress([source({TOPIC: {"0": 10}}, None)]))
    assert replayed.end_offsets == {(TOPIC, "0"): 10}
    assert replayed.behind_latest is None and replayed.unreadable == ()
    assert "visits_sync_offsets_behind_latest_max" not in replayed.values(VISITS_SYNC)

    nothing = BatchMetrics.from_progress(progress([]), observation="visits_quality")
    assert nothing.end_offsets == {} and nothing.behind_latest is None and nothing.observed == {}
    assert [u.part for u in nothing.unreadable] == ["sources", "observed_metrics"]
    names = set(nothing.values(VISITS_SYNC))
    assert "visits_sync_duration" in names and not [n for n in names if "behind" in n]
    assert nothing.labelled(VISITS_SYNC) == {}


def test_observed_values_are_read_by_observation_name() -> None:
    observed = {"visits_quality": {"event_time": 3, "user_id": 0, "page": 5}, "other": {"x": 1}}
    metrics = BatchMetrics.from_progress(progress([], observed), observation="visits_quality")
    assert metrics.observed == {"event_time": 3, "user_id": 0, "page": 5}
    # Without an observation name nothing is read, and nothing is missing.
    assert BatchMetrics.from_progress(progress([], observed)).observed == {}
    null = BatchMetrics.from_progress(progress([], {"visits_quality": {"page": None}}), "visits_quality")
    assert null.observed == {} and [u.part for u in null.unreadable] == ["sources", "observed_metrics"]


def test_labelled_gauges_carry_topic_partition_and_field() -> None:
    observed = {"visits_quality": {"event_time": 3, "page": 5}}
    metrics = BatchMetrics.from_progress(
        progress([source({TOPIC: {"0": 10, "1": 4}}, {TOPIC: {"0": 12, "1": 4}})], observed),
        observation="visits_quality",
    )
    assert metrics.labelled(STREAMING_BATCH) == {
        "streaming_batch_source_end_offset": (
            ("topic", "partition"),
            {(TOPIC, "0"): 10.0, (TOPIC, "1"): 4.0},
        ),
        "streaming_batch_observed_null_values": (("field",), {("event_time",): 3, ("page",): 5}),
    }
    values = metrics.values(VISITS_SYNC)
    assert values["visits_sync_offsets_behind_latest_min"] == 0
    assert values["visits_sync_offsets_behind_latest_avg"] == 1.0
    assert values["visits_sync_offsets_behind_latest_max"] == 2


def test_the_pusher_counts_and_logs_unreadable_parts_and_still_pushes_the_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = f"job_{uuid.uuid4().hex[:6]}"
    # Nothing listens on this port: the push fails at once and is counted, the listener carries on.
    pusher = BatchMetricsPusher(
        f"http://127.0.0.1:{free_port()}", job=job, instance="pod-1", timeout=0.5, names=VISITS_SYNC
    )
    try:
        bad = progress([source("{broken", {TOPIC: {"0": 1}}), source({TOPIC: {"1": 7}}, {TOPIC: {"1": 9}})])
        with caplog.at_level(logging.INFO, logger="streamwatch_common.spark.listener"):
            pusher.onQueryProgress(SimpleNamespace(progress=bad))
            wait_until(
                lambda: REGISTRY.get_sample_value("streamwatch_push_failures_total", {"job": job}) == 1, 5
            )
        unreadable = REGISTRY.get_sample_value(
            "streamwatch_progress_unreadable_total", {"job": job, "part": "end_offset"}
        )
        assert unreadable == 1
        zero = REGISTRY.get_sample_value(
            "streamwatch_progress_unreadable_total", {"job": job, "part": "sources"}
        )
        assert zero == 0, "every part is exported from the start"
        (warning,) = [r for r in caplog.records if r.getMessage() == "progress_unreadable"]
        assert warning.__dict__["part"] == "end_offset" and warning.__dict__["batch_id"] == 4
        assert "source 0" in warning.__dict__["detail"]
        (line,) = [r for r in caplog.records if r.getMessage() == "batch_progress"]
        assert line.__dict__["end_offsets"] == {f"{TOPIC}/1": 7}
        assert line.__dict__["offsets_behind_latest"] == {"min": 2, "avg": 2.0, "max": 2}
        # What would have been pushed: the valid source's partition, the batch's own numbers.
        text = generate_latest(pusher.group.batch_registry(BatchMetrics.from_progress(bad))).decode()
        assert 'visits_sync_source_end_offset{partition="1",topic="visits"} 7.0' in text
        assert "visits_sync_offsets_behind_latest_max 2.0" in text
        assert "visits_sync_duration 1500.0" in text
    finally:
        pusher.close(timeout=2)


def test_a_progress_without_the_batchs_own_numbers_is_a_failed_push_not_an_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = f"job_{uuid.uuid4().hex[:6]}"
    pusher = BatchMetricsPusher(f"http://127.0.0.1:{free_port()}", job=job, instance="pod-1", timeout=0.5)
    try:
        pusher.onQueryProgress(SimpleNamespace(progress=SimpleNamespace(sources=[])))
        assert REGISTRY.get_sample_value("streamwatch_push_failures_total", {"job": job}) == 1
        assert [r for r in caplog.records if r.getMessage() == "batch_metrics_unreadable"]
    finally:
        pusher.close(timeout=2)


def test_a_progress_json_of_another_shape_is_counted_and_read_the_slow_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = f"job_{uuid.uuid4().hex[:6]}"
    pusher = BatchMetricsPusher(f"http://127.0.0.1:{free_port()}", job=job, instance="pod-1", timeout=0.5)
    assert REGISTRY.get_sample_value("streamwatch_progress_json_fallbacks_total", {"job": job}) == 0
    # Not a JVM progress: the slow way (pyspark reading it field by field) fails on this stand-in, after
    # the fallback was counted and logged.
    jprogress = SimpleNamespace(
        json=lambda: "[]", inputRowsPerSecond=lambda: 1.0, processedRowsPerSecond=lambda: 1.0
    )
    try:
        with (
            caplog.at_level(logging.WARNING, logger="streamwatch_common.spark.listener"),
            pytest.raises(AttributeError),
        ):
            _ProgressAsJson(pusher).onQueryProgress(SimpleNamespace(progress=lambda: jprogress))
        assert REGISTRY.get_sample_value("streamwatch_progress_json_fallbacks_total", {"job": job}) == 1
        (line,) = [r for r in caplog.records if r.getMessage() == "progress_json_unreadable"]
        assert line.__dict__["job"] == job
    finally:
        pusher.close(timeout=2)
