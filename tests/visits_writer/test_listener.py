"""The SLA listener's pushing, against a real Pushgateway: values arrive, failures are counted and cost the
caller nothing, pushes resume after an outage, a hanging gateway is cut off by the timeout."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from streamwatch_common.spark.batch_metric_names import VISITS_SYNC, duration_buckets
from streamwatch_common.spark.batch_metrics import BatchMetrics, OffsetsBehind
from streamwatch_common.spark.listener import BatchMetricsPusher
from streamwatch_dev.process import free_port, wait_until
from streamwatch_dev.prometheus import Pushgateway


def counter(name: str, job: str) -> float:
    return REGISTRY.get_sample_value(name, {"job": job}) or 0.0


def pushed(gateway: Pushgateway, job: str, instance: str) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(gateway.metrics_text()):
        for sample in family.samples:
            if sample.labels.get("job") == job and sample.labels.get("instance") == instance:
                found[sample.name] = sample.value
    return found


def metrics(batch_id: int, duration_ms: float = 1234.0) -> BatchMetrics:
    return BatchMetrics(batch_id, duration_ms, 500, 50.0, 400.0)


def _pods(gateway: Pushgateway, job: str, instance: str) -> dict[str, set[str]]:
    """Metric name → the ``pod`` labels it carries in the group (job, instance)."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(gateway.metrics_text()):
        for sample in family.samples:
            if sample.labels.get("job") == job and sample.labels.get("instance") == instance:
                found.setdefault(sample.name, set()).add(sample.labels.get("pod", ""))
    return found


def test_the_next_pod_takes_the_jobs_group_over_when_its_query_starts(pushgateway: Pushgateway) -> None:
    """One group per job, the pushing pod a plain label: when the next pod's query starts, the group
    loses the previous pod's values at once (an empty push) and its push time is fresh, before the new
    pod's first batch; the heartbeat and the batches then carry the new pod's name."""
    job, group = f"job_{uuid.uuid4().hex[:6]}", "streamwatch/sw-streamwatch-visits-writer"
    old = BatchMetricsPusher(pushgateway.url, job=job, instance=group, pod="pod-a", names=VISITS_SYNC)
    try:
        old.submit(metrics(1, 16285.0))
        wait_until(lambda: pushed(pushgateway, job, group).get("visits_sync_duration") == 16285.0, 10)
    finally:
        old.close()
    assert _pods(pushgateway, job, group)["visits_sync_duration"] == {"pod-a"}
    before = pushed(pushgateway, job, group)["push_time_seconds"]
    new = BatchMetricsPusher(pushgateway.url, job=job, instance=group, pod="pod-b", names=VISITS_SYNC)
    try:
        new.onQueryStarted(SimpleNamespace(id="q"))
        wait_until(lambda: "visits_sync_duration" not in pushed(pushgateway, job, group), 10)
        assert pushed(pushgateway, job, group)["push_time_seconds"] > before
        new.onQueryIdle(None)
        wait_until(lambda: "visits_sync_idle_heartbeat_seconds" in pushed(pushgateway, job, group), 10)
        new.submit(metrics(2, 596.0))
        wait_until(lambda: pushed(pushgateway, job, group).get("visits_sync_duration") == 596.0, 10)
        pods = _pods(pushgateway, job, group)
        assert pods["visits_sync_duration"] == pods["visits_sync_batch_id"] == {"pod-b"}
        assert pods["push_time_seconds"] == {""}  # the group's own series carry no pod
    finally:
        new.close()


def test_batch_metrics_reach_the_pushgateway(pushgateway: Pushgateway) -> None:
    job = f"job_{uuid.uuid4().hex[:6]}"
    pusher = BatchMetricsPusher(pushgateway.url, job=job, instance="pod-1", timeout=2, names=VISITS_SYNC)
    try:
        pusher.submit(metrics(7, 15250.0))
        wait_until(lambda: pushed(pushgateway, job, "pod-1").get("visits_sync_batch_id") == 7, 10)
        values = pushed(pushgateway, job, "pod-1")
        assert values["visits_sync_duration"] == 15250.0
        assert values["visits_sync_input_rows"] == 500
        assert values["visits_sync_input_rows_per_second"] == 50.0
        assert values["visits_sync_processed_rows_per_second"] == 400.0
        assert values["push_time_seconds"] > time.time() - 30
        wait_until(lambda: counter("streamwatch_pushes_total", job) == 1, 5)  # counted once it returned
        assert counter("streamwatch_push_failures_total", job) == 0
        # Idle: only the heartbeat is added; the batch values and a fresh push time stay.
        before = values["push_time_seconds"]
        pusher.onQueryIdle(None)
        wait_until(lambda: "visits_sync_idle_heartbeat_seconds" in pushed(pushgateway, job, "pod-1"), 10)
        after = pushed(pushgateway, job, "pod-1")
        assert after["visits_sync_duration"] == 15250.0 and after["push_time_seconds"] >= before
    finally:
        pusher.close()


def buckets(gateway: Pushgateway, job: str, instance: str, name: str) -> dict[float, float]:
    """Upper bound → cumulative count of the histogram ``name`` in the group (job, instance)."""
    found = {}
    for family in text_string_to_metric_families(gateway.metrics_text()):
        for sample in family.samples:
            group = (sample.labels.get("job"), sample.labels.get("instance"))
            if sample.name == f"{name}_bucket" and group == (job, instance):
                found[float(sample.labels["le"])] = sample.value
    return found


def test_every_batch_handed_over_is_in_the_duration_histogram_with_the_sla_a_bucket_bound(
    pushgateway: Pushgateway,
) -> None:
    job, group = f"job_{uuid.uuid4().hex[:6]}", "streamwatch/sw-streamwatch-visits-writer"
    pusher = BatchMetricsPusher(
        pushgateway.url, job=job, instance=group, pod="pod-a", names=VISITS_SYNC,
        buckets=duration_buckets(sla_seconds=7.5),
    )  # fmt: skip
    try:
        # Handed over at once: the gauges keep only what the last push carried, the histogram every batch.
        for batch_id, duration_ms in ((1, 900.0), (2, 12000.0), (3, 700.0)):
            pusher.submit(metrics(batch_id, duration_ms))
        wait_until(lambda: pushed(pushgateway, job, group).get("visits_sync_batch_id") == 3, 10)
        values = pushed(pushgateway, job, group)
        assert values["visits_sync_duration"] == 700.0
        assert values["visits_sync_batch_seconds_count"] == 3
        assert values["visits_sync_batch_seconds_sum"] == 13.6
        counts = buckets(pushgateway, job, group, "visits_sync_batch_seconds")
        assert counts[7.5] == 2, "the SLA is a bound: the batches within it are read off one bucket"
        assert counts[0.5] == 0 and counts[1.0] == 2 and counts[float("inf")] == 3
        # An idle heartbeat adds to the group and keeps the histogram.
        pusher.onQueryIdle(None)
        wait_until(lambda: "visits_sync_idle_heartbeat_seconds" in pushed(pushgateway, job, group), 10)
        assert pushed(pushgateway, job, group)["visits_sync_batch_seconds_count"] == 3
    finally:
        pusher.close()


def labelled(gateway: Pushgateway, job: str, instance: str) -> dict[tuple[str, str], float]:
    """(name, the sample's labels other than job and instance, as text) → value."""
    found = {}
    for family in text_string_to_metric_families(gateway.metrics_text()):
        for sample in family.samples:
            if sample.labels.get("job") == job and sample.labels.get("instance") == instance:
                rest = sorted((k, v) for k, v in sample.labels.items() if k not in ("job", "instance"))
                found[(sample.name, ",".join(f"{k}={v}" for k, v in rest))] = sample.value
    return found


def test_source_offsets_and_observed_values_reach_the_pushgateway_and_are_replaced_per_batch(
    pushgateway: Pushgateway,
) -> None:
    job = f"job_{uuid.uuid4().hex[:6]}"
    pusher = BatchMetricsPusher(pushgateway.url, job=job, instance="pod-1", timeout=2, names=VISITS_SYNC)
    first = BatchMetrics(
        1, 100.0, 5, 1.0, 2.0,
        end_offsets={("visits", "0"): 10, ("visits", "1"): 4},
        behind_latest=OffsetsBehind(0, 1.5, 3),
        observed={"page": 2, "user_id": 0},
    )  # fmt: skip
    second = BatchMetrics(2, 100.0, 5, 1.0, 2.0, end_offsets={("visits", "0"): 12})
    try:
        pusher.submit(first)
        wait_until(lambda: pushed(pushgateway, job, "pod-1").get("visits_sync_batch_id") == 1, 10)
        values = labelled(pushgateway, job, "pod-1")
        assert values[("visits_sync_source_end_offset", "partition=0,topic=visits")] == 10
        assert values[("visits_sync_source_end_offset", "partition=1,topic=visits")] == 4
        assert values[("visits_sync_offsets_behind_latest_min", "")] == 0
        assert values[("visits_sync_offsets_behind_latest_avg", "")] == 1.5
        assert values[("visits_sync_offsets_behind_latest_max", "")] == 3
        assert values[("visits_sync_observed_null_values", "field=page")] == 2
        assert values[("visits_sync_observed_null_values", "field=user_id")] == 0
        # The next batch replaces the group: what it did not report is gone, not left stale.
        pusher.submit(second)
        wait_until(lambda: pushed(pushgateway, job, "pod-1").get("visits_sync_batch_id") == 2, 10)
        values = labelled(pushgateway, job, "pod-1")
        assert values[("visits_sync_source_end_offset", "partition=0,topic=visits")] == 12
        stale = [k for k in values if "partition=1" in k[1] or "behind" in k[0] or "observed" in k[0]]
        assert stale == []
    finally:
        pusher.close()


def test_other_jobs_push_job_neutral_names_in_seconds(pushgateway: Pushgateway) -> None:
    """Only the visits writer pushes the seed's visits_sync_* names; any other job pushes
    streaming_batch_* under its own job label, the duration in seconds."""
    job = f"job_{uuid.uuid4().hex[:6]}"
    pusher = BatchMetricsPusher(pushgateway.url, job=job, instance="pod-1", timeout=2)
    try:
        pusher.submit(metrics(3, 1500.0))
        wait_until(lambda: pushed(pushgateway, job, "pod-1").get("streaming_batch_id") == 3, 10)
        values = pushed(pushgateway, job, "pod-1")
        assert values["streaming_batch_duration_seconds"] == 1.5
        assert values["streaming_batch_input_rows"] == 500
        assert values["streaming_batch_processed_rows_per_second"] == 400.0
        assert not [name for name in values if name.startswith("visits_sync")]
        pusher.onQueryIdle(None)
        wait_until(lambda: "streaming_batch_idle_heartbeat_seconds" in pushed(pushgateway, job, "pod-1"), 10)
    finally:
        pusher.close()


def test_gateway_down_is_counted_without_slowing_the_caller_and_pushes_resume(output_dir: Path) -> None:
    gateway = Pushgateway.start(output_dir)
    job = f"job_{uuid.uuid4().hex[:6]}"
    pusher = BatchMetricsPusher(gateway.url, job=job, instance="pod-1", timeout=1, names=VISITS_SYNC)
    try:
        pusher.submit(metrics(0))
        wait_until(lambda: counter("streamwatch_pushes_total", job) == 1, 10)
        gateway.stop()
        handing_over = 0.0
        for batch_id in range(1, 4):
            started = time.monotonic()
            pusher.submit(metrics(batch_id))
            handing_over += time.monotonic() - started
            time.sleep(0.3)
        wait_until(lambda: counter("streamwatch_push_failures_total", job) >= 1, 10)
        # The listener callback only hands over values: three submits cost far less than one timeout (the
        # submits alone are timed; how soon the pushing thread reports a failure depends on the machine).
        assert handing_over < 0.3, handing_over
        gateway.restart()
        pusher.submit(metrics(9))
        wait_until(lambda: pushed(gateway, job, "pod-1").get("visits_sync_batch_id") == 9, 15)
        # Counted once the push has returned, a moment after the gateway holds the value.
        wait_until(lambda: counter("streamwatch_pushes_total", job) >= 2, 5)
    finally:
        pusher.close()
        gateway.stop()


def test_a_hanging_gateway_is_cut_off_by_the_timeout() -> None:
    # A socket that accepts connections into its backlog but never answers.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        port = free_port()
        silent.bind(("127.0.0.1", port))
        silent.listen(16)
        job = f"job_{uuid.uuid4().hex[:6]}"
        pusher = BatchMetricsPusher(f"http://127.0.0.1:{port}", job=job, instance="pod-1", timeout=0.5)
        started = time.monotonic()
        submit_started = time.monotonic()
        pusher.submit(metrics(0))
        assert time.monotonic() - submit_started < 0.05
        wait_until(lambda: counter("streamwatch_push_failures_total", job) == 1, 5, interval=0.05)
        elapsed = time.monotonic() - started
        assert 0.4 < elapsed < 2.0, elapsed
        pusher.close(timeout=2)
