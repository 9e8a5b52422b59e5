"""The visits-writer alert rules, rendered from the chart, checked and unit-tested with promtool.

Series are 15 s apart (Pushgateway scrapes), rules are evaluated every 15 s. Defaults: SLA 10 000 ms for
1m; stalled after 300 s without a push, for 1m. ``ALERTS`` series show the pending phase, which
``alert_rule_test`` cannot (it lists firing alerts only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from rules.conftest import RUNBOOK, assert_passes, promtool_test, rendered_rule_file, run_promtool

from streamwatch_dev.chart import render
from streamwatch_dev.workloads import service_containers

RULE_FILE = "visits-writer.rules.yaml"  # the ``rule_file`` fixture renders it
SLA = "SLA miss visits synchronizer"
STALLED = "visits synchronizer stalled"
JOB = "visits_to_delta_synchronizer"


def alerts_at(name: str, state: str, at: str, instances: list[str]) -> dict[str, Any]:
    return {
        "expr": f'ALERTS{{alertname="{name}", alertstate="{state}"}}',
        "eval_time": at,
        "exp_samples": [
            {
                "labels": f'ALERTS{{alertname="{name}", alertstate="{state}", instance="{i}", job="{JOB}",'
                f' severity="{"warning" if name == SLA else "critical"}"}}',
                "value": 1,
            }
            for i in instances
        ],
    }


def sla_annotations(instance: str, value: str) -> dict[str, str]:
    return {
        "runbook_url": RUNBOOK + "sla-miss-visits-synchronizer",
        "summary": f"Visits synchronizer {instance} misses its SLA",
        "description": f"Micro-batches of {instance} take {value} ms, above the SLA of 10000 ms for 1m.",
    }


def stalled_annotations(instance: str, age: str) -> dict[str, str]:
    return {
        "runbook_url": RUNBOOK + "visits-synchronizer-stalled",
        "summary": f"Visits synchronizer {instance} stopped reporting",
        "description": f"{instance} has not pushed micro-batch metrics for {age} (limit 300 s): the job is"
        " down, stuck, or cannot reach the Pushgateway.",
    }


def sla_case() -> dict[str, Any]:
    # slow: fast 0-45 s, slow (15 s batches) 60-165 s, fast from 180 s.
    # spiky: one slow batch per minute, never slow for a whole minute -> must never fire.
    # Another job under the seed's name (the passthrough pushes streaming_batch_* now) -> not this alert's.
    return {
        "interval": "15s",
        "input_series": [
            {
                "series": f'visits_sync_duration{{job="{JOB}", instance="slow"}}',
                "values": "500x3 15000x7 500x8",
            },
            {
                "series": f'visits_sync_duration{{job="{JOB}", instance="spiky"}}',
                "values": " ".join(["500", "20000", "500", "500"] * 4 + ["500"] * 3),
            },
            {"series": 'visits_sync_duration{job="passthrough", instance="pt"}', "values": "50000x18"},
        ],
        "alert_rule_test": [
            {"alertname": SLA, "eval_time": "45s", "exp_alerts": []},
            {"alertname": SLA, "eval_time": "75s", "exp_alerts": []},
            {
                "alertname": SLA,
                "eval_time": "120s",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "warning", "instance": "slow", "job": JOB},
                        "exp_annotations": sla_annotations("slow", "15k"),
                    }
                ],
            },
            {"alertname": SLA, "eval_time": "195s", "exp_alerts": []},
            {"alertname": SLA, "eval_time": "255s", "exp_alerts": []},
        ],
        "promql_expr_test": [
            {
                "expr": 'ALERTS{alertname="SLA miss visits synchronizer"}',
                "eval_time": "45s",
                "exp_samples": [],
            },
            # spiky is pending while its single slow batch is the last value, but never for long enough.
            alerts_at(SLA, "pending", "75s", ["slow", "spiky"]),
            alerts_at(SLA, "firing", "165s", ["slow"]),
            {"expr": f'ALERTS{{alertname="{SLA}", instance="slow"}}', "eval_time": "195s", "exp_samples": []},
            # The same look-back sees slow's firing phase, so an empty answer for the others means something.
            {
                "expr": f'max_over_time(ALERTS{{alertname="{SLA}", alertstate="firing"}}[5m])',
                "eval_time": "270s",
                "exp_samples": [
                    {
                        "labels": f'{{alertname="{SLA}", alertstate="firing", instance="slow", job="{JOB}",'
                        ' severity="warning"}',
                        "value": 1,
                    }
                ],
            },
        ],
    }


def stalled_case() -> dict[str, Any]:
    # dies: pushes every 15 s until 300 s, silent until 900 s, then pushes again.
    # healthy: pushes all the time -> must never fire.
    return {
        "interval": "15s",
        "input_series": [
            {
                "series": f'push_time_seconds{{job="{JOB}", instance="dies"}}',
                "values": "0+15x20 300+0x39 900+15x10",
            },
            {"series": f'push_time_seconds{{job="{JOB}", instance="healthy"}}', "values": "0+15x70"},
        ],
        "alert_rule_test": [
            {"alertname": STALLED, "eval_time": "600s", "exp_alerts": []},
            {"alertname": STALLED, "eval_time": "645s", "exp_alerts": []},
            {
                "alertname": STALLED,
                "eval_time": "720s",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "critical", "instance": "dies", "job": JOB},
                        "exp_annotations": stalled_annotations("dies", "7m 0s"),
                    }
                ],
            },
            {"alertname": STALLED, "eval_time": "930s", "exp_alerts": []},
        ],
        "promql_expr_test": [
            {
                "expr": 'ALERTS{alertname="visits synchronizer stalled"}',
                "eval_time": "600s",
                "exp_samples": [],
            },
            alerts_at(STALLED, "pending", "645s", ["dies"]),
            alerts_at(STALLED, "firing", "885s", ["dies"]),
            {
                "expr": 'ALERTS{alertname="visits synchronizer stalled"}',
                "eval_time": "930s",
                "exp_samples": [],
            },
            {
                "expr": f'max_over_time(ALERTS{{alertname="{STALLED}", instance="healthy"}}[16m])',
                "eval_time": "1000s",
                "exp_samples": [],
            },
        ],
    }


# The job's one Pushgateway group as the chart wires it (release sw, namespace default): every pod of the
# visits writer pushes there, its own name as the `pod` label (streamwatch.visitsWriterPushInstance).
GROUP = "default/sw-streamwatch-visits-writer"


def pod_replaced_case(last_push: int, takeover: int) -> dict[str, Any]:
    """Pod vw-a misses the SLA and pushes until ``last_push`` s, then stops (a rollout's SIGTERM, or a
    SIGKILL); the group keeps its last values until pod vw-b's query starts at ``takeover`` s and takes
    the group over (an empty push: vw-a's series leave, the push time is fresh), then vw-b pushes fast
    batches every 15 s. The job misses its SLA until vw-b takes over, then it does not: "SLA miss" must
    be firing before and inactive after, with the group's labels only, and "stalled" must never start
    while vw-b pushes (nor in the gap, shorter than the 300 s threshold)."""
    step = 15
    slow_samples = takeover // step  # vw-a's values stay in the group until the takeover
    frozen = (takeover - last_push) // step - 1  # scrapes between vw-a's last push and the takeover
    push_times = f"0+15x{last_push // step} " + (f"{last_push}x{frozen - 1} " if frozen else "")
    end = takeover + 20 * step
    return {
        "interval": f"{step}s",
        "input_series": [
            {
                "series": f'visits_sync_duration{{job="{JOB}", instance="{GROUP}", pod="vw-a"}}',
                "values": f"15000x{slow_samples - 1} stale",
            },
            {
                "series": f'visits_sync_duration{{job="{JOB}", instance="{GROUP}", pod="vw-b"}}',
                "values": f"_x{slow_samples + 1} 500x20",
            },
            {
                "series": f'push_time_seconds{{job="{JOB}", instance="{GROUP}"}}',
                "values": push_times + f"{takeover}+15x20",
            },
        ],
        "alert_rule_test": [
            {
                "alertname": SLA,
                "eval_time": f"{takeover - step}s",
                "exp_alerts": [
                    {
                        # The job's group, whichever pod pushed: no `pod` label on the alert.
                        "exp_labels": {"severity": "warning", "instance": GROUP, "job": JOB},
                        "exp_annotations": sla_annotations(GROUP, "15k"),
                    }
                ],
            },
            {"alertname": SLA, "eval_time": f"{takeover}s", "exp_alerts": []},
            {"alertname": SLA, "eval_time": f"{end}s", "exp_alerts": []},
            {"alertname": STALLED, "eval_time": f"{takeover - step}s", "exp_alerts": []},
            {"alertname": STALLED, "eval_time": f"{end}s", "exp_alerts": []},
        ],
        "promql_expr_test": [
            alerts_at(SLA, "firing", f"{takeover - step}s", [GROUP]),
            # From the takeover on: never pending or firing again, and "stalled" never at all.
            {
                "expr": f'max_over_time(ALERTS{{alertname="{SLA}"}}[{end - takeover}s])',
                "eval_time": f"{end}s",
                "exp_samples": [],
            },
            {
                "expr": f'max_over_time(ALERTS{{alertname="{STALLED}"}}[{end}s])',
                "eval_time": f"{end}s",
                "exp_samples": [],
            },
        ],
    }


# (case, last push of the replaced pod, takeover by the new pod), in seconds.
POD_REPLACED = [
    # 1. Rollout (Recreate): vw-a stops on SIGTERM, vw-b's query starts a minute later.
    ("rollout", 150, 210),
    # 2. vw-a SIGKILLed (no clean stop); its replacement takes four minutes to start its query.
    ("sigkill", 150, 390),
]


@pytest.mark.parametrize(
    ("last_push", "takeover"), [c[1:] for c in POD_REPLACED], ids=[c[0] for c in POD_REPLACED]
)
def test_after_a_pod_is_replaced_the_job_is_judged_by_the_new_pod(
    rule_file: Path, tmp_path: Path, last_push: int, takeover: int
) -> None:
    case = pod_replaced_case(last_push, takeover)
    assert_passes(promtool_test(tmp_path / "pod-replaced.test.yaml", [rule_file], "15s", [case]))


def test_the_pod_replaced_cases_use_the_charts_group() -> None:
    """GROUP above is what the chart gives the visits writer as its push instance."""
    manifests = render(show_only="templates/visits-writer/deployment.yaml")
    (c,) = [c for c in service_containers(manifests, "visits-writer") if not c.init]
    assert c.env()["VISITS_WRITER_INSTANCE"]["value"] == GROUP


def test_rendered_rules_pass_promtool_check(rule_file: Path) -> None:
    result = run_promtool("check", "rules", str(rule_file))
    assert_passes(result)
    assert "SUCCESS: 2 rules found" in result.stdout


def test_rule_values_come_from_the_chart(tmp_path: Path) -> None:
    values = {
        "alerts.slaMiss.thresholdMs": 2500,
        "alerts.slaMiss.for": "5s",
        "alerts.stalled.afterSeconds": 42,
        "visitsWriter.settings.push_job": "renamed_writer",
    }
    path = rendered_rule_file(tmp_path, "visits-writer.rules.yaml", values)
    rules = {r["alert"]: r for r in yaml.safe_load(path.read_text())["groups"][0]["rules"]}
    assert rules[SLA]["expr"].endswith("> 2500") and rules[SLA]["for"] == "5s"
    assert rules[STALLED]["expr"].endswith("> 42")
    # The job matcher is the visits writer's push_job value (VISITS_WRITER_PUSH_JOB), not a fixed name.
    for rule in rules.values():
        assert 'job="renamed_writer"' in rule["expr"] and JOB not in rule["expr"]


def test_sla_alert_fires_for_a_renamed_job_only(tmp_path: Path) -> None:
    path = rendered_rule_file(
        tmp_path, "visits-writer.rules.yaml", {"visitsWriter.settings.push_job": "renamed_writer"}
    )
    slow = "15000x18"
    case = {
        "interval": "15s",
        "input_series": [
            {"series": 'visits_sync_duration{job="renamed_writer", instance="w"}', "values": slow},
            {"series": f'visits_sync_duration{{job="{JOB}", instance="old"}}', "values": slow},
        ],
        "alert_rule_test": [
            {
                "alertname": SLA,
                "eval_time": "120s",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "warning", "instance": "w", "job": "renamed_writer"},
                        "exp_annotations": sla_annotations("w", "15k"),
                    }
                ],
            }
        ],
    }
    assert_passes(promtool_test(tmp_path / "renamed.test.yaml", [path], "15s", [case]))


def test_alerts_go_pending_firing_resolved_and_stay_quiet_when_they_must(
    rule_file: Path, tmp_path: Path
) -> None:
    cases = [sla_case(), stalled_case()]
    result = promtool_test(tmp_path / "visits-writer.rules.test.yaml", [rule_file], "15s", cases)
    assert_passes(result)
    assert "SUCCESS" in result.stdout


def test_promtool_test_can_fail(rule_file: Path, tmp_path: Path) -> None:
    """Guard against a vacuous pass: a wrong expectation (firing while still pending) must fail."""
    case = sla_case()
    case["alert_rule_test"] = [
        {
            "alertname": SLA,
            "eval_time": "75s",
            "exp_alerts": [{"exp_labels": {"severity": "warning", "instance": "slow", "job": JOB}}],
        }
    ]
    case["promql_expr_test"] = []
    assert promtool_test(tmp_path / "wrong.test.yaml", [rule_file], "15s", [case]).returncode != 0
