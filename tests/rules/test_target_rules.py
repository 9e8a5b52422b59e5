"""The chart's target-down alert, rendered from the chart and unit-tested with promtool.

Default: a target of job ``streamwatch`` (every service replica) or ``pushgateway`` down for 5m. The chart
renders into the namespace ``default`` here. Series are 1m apart. ``ALERTS`` series show the pending
phase, which ``alert_rule_test`` cannot (it lists firing alerts only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from rules.conftest import RUNBOOK, assert_passes, promtool_test, rendered_rule_file

RULE_FILE = "targets.rules.yaml"  # the ``rule_file`` fixture renders it
DOWN = "streamwatch target down"


def up(labels: dict[str, str], values: str) -> dict[str, str]:
    body = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"up{{{body}}}", "values": values}


OBSERVER = {
    "namespace": "default",
    "job": "streamwatch",
    "component": "observer",
    "instance": "10.0.0.1:8080",
}


def down(labels: dict[str, str], what: str) -> dict[str, Any]:
    return {
        "exp_labels": {"severity": "warning", **labels},
        "exp_annotations": {
            "runbook_url": RUNBOOK + "streamwatch-target-down",
            "summary": f"{labels['job']} target {labels['instance']} is down",
            "description": f"Prometheus has not scraped {labels['instance']} ({what}) for 5m.",
        },
    }


def pending(component: str, instance: str) -> str:
    return (
        f'ALERTS{{alertname="{DOWN}", alertstate="pending", component="{component}", instance="{instance}",'
        ' job="streamwatch", namespace="default", severity="warning"}'
    )


def test_fires_for_a_target_down_longer_than_for_and_for_no_other(rule_file: Path, tmp_path: Path) -> None:
    # observer replica: down from 2m to 11m -> pending at 2m, firing from 7m, gone at 12m.
    # generator replica: down for 3 minutes only (a restart) -> never.
    # Pushgateway: up throughout -> never.
    # another application's target in the same namespace, down throughout -> not the chart's: never.
    # the chart's job in another namespace (another release), down throughout -> not this release's: never.
    # a target of a Prometheus that labels no namespace (one release per Prometheus), down from 0 -> firing
    # from 5m.
    generator = {**OBSERVER, "component": "generator", "instance": "10.0.0.2:8080"}
    pushgateway = {
        "namespace": "default",
        "job": "pushgateway",
        "instance": "sw-streamwatch-pushgateway:9091",
    }
    foreign = {"namespace": "default", "job": "kube-state-metrics", "instance": "10.0.0.9:8080"}
    other_release = {**OBSERVER, "namespace": "team-b", "instance": "10.0.1.1:8080"}
    unlabelled = {"job": "pushgateway", "instance": "127.0.0.1:9091"}
    case = {
        "interval": "1m",
        "input_series": [
            up(OBSERVER, "1 1 0x9 1x4"),
            up(generator, "1 1 0x2 1x10"),
            up(pushgateway, "1x15"),
            up(foreign, "0x15"),
            up(other_release, "0x15"),
            up(unlabelled, "0x15"),
        ],
        "alert_rule_test": [
            {"eval_time": "4m", "alertname": DOWN, "exp_alerts": []},
            {
                "eval_time": "5m",
                "alertname": DOWN,
                "exp_alerts": [down(unlabelled, "job pushgateway")],
            },
            {
                "eval_time": "7m",
                "alertname": DOWN,
                "exp_alerts": [
                    down(OBSERVER, "job streamwatch, observer"),
                    down(unlabelled, "job pushgateway"),
                ],
            },
            {
                "eval_time": "11m",
                "alertname": DOWN,
                "exp_alerts": [
                    down(OBSERVER, "job streamwatch, observer"),
                    down(unlabelled, "job pushgateway"),
                ],
            },
            {
                "eval_time": "12m",
                "alertname": DOWN,
                "exp_alerts": [down(unlabelled, "job pushgateway")],
            },
        ],
        "promql_expr_test": [
            {
                "expr": f'ALERTS{{alertname="{DOWN}", alertstate="pending", component!=""}}',
                "eval_time": "3m",
                "exp_samples": [
                    {"labels": pending(component, instance), "value": 1}
                    for component, instance in (
                        ("generator", "10.0.0.2:8080"),
                        ("observer", "10.0.0.1:8080"),
                    )
                ],
            },
            # The generator's restart never reached firing.
            {
                "expr": f'max_over_time(ALERTS{{alertname="{DOWN}", alertstate="firing",'
                ' component="generator"}[15m])',
                "eval_time": "14m",
                "exp_samples": [],
            },
        ],
    }
    assert_passes(promtool_test(tmp_path / "targets.test.yaml", [rule_file], "1m", [case]))


def test_the_duration_comes_from_the_chart(tmp_path: Path) -> None:
    path = rendered_rule_file(tmp_path, "targets.rules.yaml", {"alerts.targetDown.for": "90s"})
    (rule,) = yaml.safe_load(path.read_text())["groups"][0]["rules"]
    assert rule["alert"] == DOWN and rule["for"] == "90s"
    assert rule["expr"] == 'up{job=~"streamwatch|pushgateway", namespace=~"default|"} == 0'
    assert rule["annotations"]["description"].endswith("for 90s.")
