"""A replaced visits-writer pod leaves nothing behind for the alerts, against a real Pushgateway and a real
Prometheus loaded with the chart's rules.

Two "pods" push one after the other, each with the environment the chart renders for the visits writer
(its own name as HOSTNAME) and the listener's own pusher (``batch_metrics_pusher``, what the job
attaches; no Spark needed to drive it): pod A misses the SLA until "SLA miss visits synchronizer" fires,
then is killed (it pushes nothing more, nor cleans up); pod B starts a few seconds later and pushes
fast batches. On the first kind install the groups were per pod: A's slow value kept the alert firing
for minutes after B reported 596 ms, and "stalled" fired for A. Here the alert must go inactive while B
pushes, "stalled" must never start, and the Pushgateway must hold one group for the job.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamwatch_common.spark.batch_metric_names import VISITS_SYNC
from streamwatch_common.spark.batch_metrics import BatchMetrics
from streamwatch_common.spark.listener import BatchMetricsPusher, batch_metrics_pusher
from streamwatch_dev.chart import render, render_rule_files
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Prometheus, Pushgateway
from streamwatch_dev.workloads import service_containers
from streamwatch_visits_writer.settings import VisitsWriterSettings

SLA = "SLA miss visits synchronizer"
STALLED = "visits synchronizer stalled"
RULE_VALUES = {
    "alerts.slaMiss.for": "3s",
    # Short enough that a stale group would fire it within the test, longer than the gap between pods.
    "alerts.stalled.afterSeconds": 8,
    "alerts.stalled.for": "1s",
}


def _chart_env() -> dict[str, str]:
    """The visits writer container's literal environment as the chart renders it (Secrets left out)."""
    manifests = render(show_only="templates/visits-writer/deployment.yaml")
    (c,) = [c for c in service_containers(manifests, "visits-writer") if not c.init]
    return {name: var["value"] for name, var in c.env().items() if "value" in var}


def _pod(name: str, gateway: Pushgateway, monkeypatch: pytest.MonkeyPatch) -> BatchMetricsPusher:
    """A pod's pusher: the chart's environment, the local Pushgateway, the pod's name as HOSTNAME."""
    for key, value in {
        **_chart_env(),
        "VISITS_WRITER_PUSHGATEWAY_URL": gateway.url,
        "HOSTNAME": name,
    }.items():
        monkeypatch.setenv(key, value)
    settings = VisitsWriterSettings()
    pusher = batch_metrics_pusher(settings, settings.push_job, VISITS_SYNC)
    assert pusher is not None
    pusher.onQueryStarted(SimpleNamespace(id=f"query-of-{name}"))
    return pusher


def _groups(gateway: Pushgateway, job: str) -> dict[str, set[str]]:
    """instance → the pods whose batch durations the job's groups hold."""
    groups: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(gateway.metrics_text()):
        for sample in family.samples:
            if sample.labels.get("job") == job:
                pods = groups.setdefault(sample.labels["instance"], set())
                if sample.name == VISITS_SYNC.duration:
                    pods.add(sample.labels["pod"])
    return groups


def test_a_replaced_pod_leaves_the_sla_alert_inactive_and_stalled_quiet(
    output_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job, instance = _chart_env()["VISITS_WRITER_PUSH_JOB"], _chart_env()["VISITS_WRITER_INSTANCE"]
    gateway = Pushgateway.start(output_dir)
    prometheus = Prometheus.start(
        output_dir / "prometheus",
        render_rule_files(output_dir / "rules", RULE_VALUES),
        pushgateway=gateway.url,
    )
    batch = 0

    def push(pusher: BatchMetricsPusher, duration_ms: float) -> None:
        nonlocal batch
        batch += 1
        pusher.submit(BatchMetrics(batch, duration_ms, 100, 20.0, 20.0))

    try:
        # Pod A misses the SLA until the alert fires: the rules are live.
        pod_a = _pod("sw-streamwatch-visits-writer-5d8f7c9b4-aaaaa", gateway, monkeypatch)

        def firing() -> bool:
            push(pod_a, 16285.0)
            return prometheus.alert_state(SLA) == "firing"

        wait_until(firing, 60, interval=1, what=f"{SLA} firing for pod A")
        (alert,) = prometheus.alerts(SLA)
        assert alert["labels"] == {"alertname": SLA, "job": job, "instance": instance, "severity": "warning"}

        # Pod A is killed: nothing more from it, and nothing cleaned up. Its replacement starts a while
        # later (under the 8 s "stalled" threshold) and pushes fast batches every second.
        pod_a.close(timeout=0)
        time.sleep(3)
        pod_b = _pod("sw-streamwatch-visits-writer-5d8f7c9b4-bbbbb", gateway, monkeypatch)
        took_over = time.monotonic()
        states: list[tuple[float, str, str]] = []
        try:
            while time.monotonic() - took_over < 20:
                push(pod_b, 596.0)
                states.append(
                    (
                        round(time.monotonic() - took_over, 1),
                        prometheus.alert_state(SLA),
                        prometheus.alert_state(STALLED),
                    )
                )
                time.sleep(1)
        finally:
            pod_b.close()
        print(f"\nafter the takeover (s, {SLA}, {STALLED}): {states}")
        # Inactive within a scrape and an evaluation or two of the takeover, and from then on.
        assert all(sla == "inactive" for at, sla, _ in states if at >= 5), states
        assert states[-1][1] == "inactive" and prometheus.alerts(SLA) == []
        assert all(stalled == "inactive" for _, _, stalled in states), states
        assert prometheus.query(f'max_over_time(ALERTS{{alertname="{STALLED}"}}[2m])') == []
        # One group for the job, holding pod B's batches only.
        assert _groups(gateway, job) == {instance: {"sw-streamwatch-visits-writer-5d8f7c9b4-bbbbb"}}
    finally:
        prometheus.stop()
        gateway.stop()
