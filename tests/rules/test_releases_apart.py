"""Two releases, each in its own namespace and with its own thresholds, rendered into one promtool run: the
rules of several releases loaded into one Prometheus (each release's PrometheusRule, or the rule files
side by side) judge each release's series by that release's values and name its namespace.

Release ``a`` in ``team-a`` keeps the defaults (lag 15 offsets, SLA 10 000 ms); release ``b`` in
``team-b`` allows a lag of 100 and batches of 30 000 ms. Series carry the labels a shared
prometheus-operator Prometheus gives them: the target's ``namespace``, ``job`` and ``instance``; the
Pushgateway's series keep the pushed ``job`` and ``instance`` (``honorLabels``), and release ``b`` pushes
to a Pushgateway shared in the namespace ``monitoring``, so only its group's instance tells it apart.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rules.conftest import RUNBOOK, assert_passes, promtool_test

from streamwatch_dev.chart import CHART, helm, parse_manifests

JOB = "visits_to_delta_synchronizer"
A_WRITER, B_WRITER = "team-a/a-streamwatch-visits-writer", "team-b/b-streamwatch-visits-writer"
A_PASSTHROUGH, B_PASSTHROUGH = "team-a/a-streamwatch-passthrough", "team-b/b-streamwatch-passthrough"
RELEASES = {
    "a": ("team-a", {}),
    "b": ("team-b", {"alerts.lag.thresholdOffsets": 100, "alerts.slaMiss.thresholdMs": 30000}),
}


def release_rule_files(target: Path, release: str, namespace: str, values: dict[str, Any]) -> list[Path]:
    """The release's rule files as `helm template --namespace` renders its rules ConfigMap."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    args += ["--show-only", "templates/prometheus/rules-configmap.yaml"]
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    (configmap,) = parse_manifests(helm(*args))
    (target / release).mkdir(parents=True)
    paths = []
    for name, text in sorted(configmap["data"].items()):
        path = target / release / name
        path.write_text(text)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def rule_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    target = tmp_path_factory.mktemp("releases")
    return [
        path
        for release, (namespace, values) in RELEASES.items()
        for path in release_rule_files(target, release, namespace, values)
    ]


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    body = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


def observer(namespace: str, partition: str, instance: str) -> dict[str, str]:
    return {
        "namespace": namespace,
        "job": "streamwatch",
        "component": "observer",
        "instance": instance,
        "spark_job": "passthrough",
        "topic": "visits",
        "partition": partition,
    }


def lagging(namespace: str, partition: str, value: int) -> dict[str, Any]:
    return {
        "exp_labels": {
            "severity": "warning",
            "namespace": namespace,
            "spark_job": "passthrough",
            "topic": "visits",
            "partition": partition,
        },
        "exp_annotations": {
            "runbook_url": RUNBOOK + "passthrough-lag",
            "summary": f"passthrough lags on visits partition {partition}",
            # Each release's own threshold decides (b's p0 at 40 does not fire); the text names none.
            "description": f"passthrough has {value} records of visits partition {partition} not yet"
            " committed, above its threshold for 5m.",
        },
    }


def the_case() -> dict[str, Any]:
    # Sampled every minute for 15 minutes; judged at 10m, when every `for` has passed.
    input_series = [
        # Lag: a's p0 at 40 (above a's 15), b's p0 at 40 (below b's 100), b's p1 at 150 (above both).
        series("observer_lag_offsets", observer("team-a", "0", "10.0.1.1:8080"), "40x15"),
        series("observer_lag_offsets", observer("team-b", "0", "10.0.2.1:8080"), "40x15"),
        series("observer_lag_offsets", observer("team-b", "1", "10.0.2.1:8080"), "150x15"),
        # SLA: a's group at 40 000 ms (above both SLAs), b's group at 15 000 ms (above a's SLA only) on
        # the shared Pushgateway; b's group stopped pushing at 0, a's pushes every minute.
        series(
            "visits_sync_duration",
            {"namespace": "team-a", "job": JOB, "instance": A_WRITER, "pod": "vw-a"},
            "40000x15",
        ),
        series(
            "visits_sync_duration",
            {"namespace": "monitoring", "job": JOB, "instance": B_WRITER, "pod": "vw-b"},
            "15000x15",
        ),
        series("push_time_seconds", {"namespace": "team-a", "job": JOB, "instance": A_WRITER}, "0+60x15"),
        series("push_time_seconds", {"namespace": "monitoring", "job": JOB, "instance": B_WRITER}, "0x15"),
        # Completeness: both passthroughs read 100 records a minute from partition 0; a's observer counts
        # them a minute later, b's never does.
        series(
            "streaming_batch_source_end_offset",
            {
                "namespace": "team-a",
                "job": "passthrough",
                "instance": A_PASSTHROUGH,
                "topic": "visits",
                "partition": "0",
            },
            "0+100x15",
        ),
        series(
            "streaming_batch_source_end_offset",
            {
                "namespace": "monitoring",
                "job": "passthrough",
                "instance": B_PASSTHROUGH,
                "topic": "visits",
                "partition": "0",
            },
            "0+100x15",
        ),
        series(
            "observer_counted_offset",
            {**observer("team-a", "0", "10.0.1.1:8080"), "topic": "processed_visits"},
            "0 0+100x14",
        ),
        # Targets: a's Pushgateway answers no scrape; b's observer does.
        series(
            "up",
            {"namespace": "team-a", "job": "pushgateway", "instance": "a-streamwatch-pushgateway:9091"},
            "0x15",
        ),
        series(
            "up",
            {
                "namespace": "team-b",
                "job": "streamwatch",
                "component": "observer",
                "instance": "10.0.2.1:8080",
            },
            "1x15",
        ),
    ]
    return {
        "interval": "1m",
        "input_series": input_series,
        "alert_rule_test": [
            {
                "eval_time": "10m",
                "alertname": "passthrough lag",
                "exp_alerts": [lagging("team-a", "0", 40), lagging("team-b", "1", 150)],
            },
            {
                "eval_time": "10m",
                "alertname": "SLA miss visits synchronizer",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "namespace": "team-a",
                            "job": JOB,
                            "instance": A_WRITER,
                        },
                        "exp_annotations": {
                            "runbook_url": RUNBOOK + "sla-miss-visits-synchronizer",
                            "summary": f"Visits synchronizer {A_WRITER} misses its SLA",
                            "description": f"Micro-batches of {A_WRITER} take 40k ms, above the SLA of 10000"
                            " ms for 1m.",
                        },
                    }
                ],
            },
            {
                "eval_time": "10m",
                "alertname": "visits synchronizer stalled",
                "exp_alerts": [
                    {
                        # b's own group, found on the shared Pushgateway by its instance.
                        "exp_labels": {
                            "severity": "critical",
                            "namespace": "monitoring",
                            "job": JOB,
                            "instance": B_WRITER,
                        },
                        "exp_annotations": {
                            "runbook_url": RUNBOOK + "visits-synchronizer-stalled",
                            "summary": f"Visits synchronizer {B_WRITER} stopped reporting",
                            "description": f"{B_WRITER} has not pushed micro-batch metrics for 10m 0s (limit"
                            " 300 s): the job is down, stuck, or cannot reach the Pushgateway.",
                        },
                    }
                ],
            },
            {
                "eval_time": "10m",
                "alertname": "observer incomplete",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "warning", "namespace": "team-b", "partition": "0"},
                        "exp_annotations": {
                            "runbook_url": RUNBOOK + "observer-incomplete",
                            "summary": "Observer behind the passthrough on partition 0",
                            "description": "700 records the passthrough read from partition 0 more than 3m"
                            " ago are not counted by the observer, above 0 for 5m.",
                        },
                    }
                ],
            },
            {
                "eval_time": "10m",
                "alertname": "streamwatch target down",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "namespace": "team-a",
                            "job": "pushgateway",
                            "instance": "a-streamwatch-pushgateway:9091",
                        },
                        "exp_annotations": {
                            "runbook_url": RUNBOOK + "streamwatch-target-down",
                            "summary": "pushgateway target a-streamwatch-pushgateway:9091 is down",
                            "description": "Prometheus has not scraped a-streamwatch-pushgateway:9091 (job"
                            " pushgateway) for 5m.",
                        },
                    }
                ],
            },
        ],
        "promql_expr_test": [
            # One completeness series per release, each named by its release's namespace.
            {
                "expr": "streamwatch:observer_completeness_gap_records",
                "eval_time": "10m",
                "exp_samples": [
                    {
                        "labels": 'streamwatch:observer_completeness_gap_records{namespace="team-a",'
                        ' partition="0"}',
                        "value": 0,
                    },
                    {
                        "labels": 'streamwatch:observer_completeness_gap_records{namespace="team-b",'
                        ' partition="0"}',
                        "value": 700,
                    },
                ],
            },
        ],
    }


def run(tmp_path: Path, rule_files: list[Path]) -> subprocess.CompletedProcess[str]:
    return promtool_test(tmp_path / "releases.test.yaml", rule_files, "1m", [the_case()])


def test_two_releases_in_one_prometheus_keep_their_alerts_apart(
    rule_files: list[Path], tmp_path: Path
) -> None:
    assert sorted(p.relative_to(p.parents[1]).as_posix() for p in rule_files) == [
        f"{release}/{name}"
        for release in ("a", "b")
        for name in ("observer.rules.yaml", "targets.rules.yaml", "visits-writer.rules.yaml")
    ]
    assert_passes(run(tmp_path, rule_files))


def _unselective(text: str) -> str:
    """The rules as they would be if they read every release's series: each namespace matcher accepting
    any namespace, each Pushgateway group matcher any instance."""
    text = re.sub(r'namespace=~"[a-z0-9-]+\|"', 'namespace=~".*"', text)
    return re.sub(r'instance="team-[ab]/[a-z-]+"', 'instance=~".+"', text)


def test_rules_that_read_every_release_fail_the_case(rule_files: list[Path], tmp_path: Path) -> None:
    """The case can fail: with rules that do not select their own release, a release's alerts are judged
    by the other's thresholds and come twice, and promtool says so."""
    changed = []
    for path in rule_files:
        copy = tmp_path / path.parent.name / path.name
        copy.parent.mkdir(exist_ok=True)
        copy.write_text(_unselective(path.read_text()))
        changed.append(copy)
    assert [p.read_text() for p in changed] != [p.read_text() for p in rule_files]
    result = run(tmp_path, changed)
    assert result.returncode != 0
    failed = set(re.findall(r"alertname: (.+?), time: 10m", result.stdout + result.stderr))
    assert failed == {check["alertname"] for check in the_case()["alert_rule_test"]}
