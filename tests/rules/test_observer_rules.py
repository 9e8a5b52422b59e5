"""The observer's lag and drift alerts, rendered from the chart, checked and unit-tested with promtool.

Defaults: lag above 15 offsets for 5m; lag above 120 s for 5m; a Burrow-style evaluation of stall, stop
or rewind for 1m; field drift above 0.25 at once; field drift from the pinned reference above 0.25 for 5m.
Series are 1m apart. ``ALERTS`` series show the
pending phase, which ``alert_rule_test`` cannot (it lists firing alerts only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from rules.conftest import RUNBOOK, assert_passes, promtool_test, run_promtool

from streamwatch_dev.chart import render_rule_files

RULE_FILE = "observer.rules.yaml"  # the ``rule_file`` fixture renders it
LAG = "passthrough lag"
LAG_SECONDS = "passthrough lag seconds"
EVALUATION_ALERTS = {
    "stall": "passthrough stalled",
    "stop": "passthrough stopped",
    "rewind": "passthrough rewound",
}
DRIFT = "field drift"
DRIFT_REFERENCE = "field drift from reference"
INCOMPLETE = "observer incomplete"
GAP = "streamwatch:observer_completeness_gap_records"
# The namespace `helm template` renders into (the completeness series are labelled with it).
NAMESPACE = "default"


def lag_series(
    partition: str, values: str, instance: str = "observer-a:8080", spark_job: str = "passthrough"
) -> dict[str, str]:
    return {
        "series": f'observer_lag_offsets{{spark_job="{spark_job}", topic="visits", partition="{partition}",'
        f' instance="{instance}", job="observer"}}',
        "values": values,
    }


def firing(partition: str, value: int, spark_job: str = "passthrough") -> dict[str, Any]:
    return {
        "exp_labels": {
            "severity": "warning",
            "spark_job": spark_job,
            "topic": "visits",
            "partition": partition,
        },
        "exp_annotations": {
            "runbook_url": RUNBOOK + "passthrough-lag",
            "summary": f"{spark_job} lags on visits partition {partition}",
            "description": f"{spark_job} has {value} records of visits partition {partition} not yet"
            " committed, above its threshold for 5m.",
        },
    }


def alerts(state: str, at: str, partitions: list[str]) -> dict[str, Any]:
    return {
        "expr": f'ALERTS{{alertname="{LAG}", alertstate="{state}"}}',
        "eval_time": at,
        "exp_samples": [
            {
                "labels": f'ALERTS{{alertname="{LAG}", alertstate="{state}", partition="{p}",'
                ' severity="warning", spark_job="passthrough", topic="visits"}',
                "value": 1,
            }
            for p in partitions
        ],
    }


def test_rule_file_is_valid(rule_file: Path) -> None:
    assert_passes(run_promtool("check", "rules", str(rule_file)))
    listed = yaml.safe_load(rule_file.read_text())["groups"][0]["rules"]
    rules = {r.get("alert") or r["record"]: r for r in listed}
    assert set(rules) == {
        LAG,
        LAG_SECONDS,
        DRIFT,
        DRIFT_REFERENCE,
        INCOMPLETE,
        GAP,
        *EVALUATION_ALERTS.values(),
    }
    assert rules[LAG]["expr"].endswith("> 15")
    assert rules[LAG]["for"] == "5m"
    assert rules[LAG_SECONDS]["expr"].endswith("> 120")
    assert {rules[name]["for"] for name in EVALUATION_ALERTS.values()} == {"1m"}
    assert rules[DRIFT]["expr"].endswith("> 0.25")
    assert rules[DRIFT]["for"] == "0s"
    assert rules[DRIFT_REFERENCE]["expr"].endswith("> 0.25") and rules[DRIFT_REFERENCE]["for"] == "5m"
    assert rules[INCOMPLETE]["expr"].endswith("> 0") and rules[INCOMPLETE]["for"] == "5m"
    assert "offset 3m" in rules[GAP]["expr"] and 'job="passthrough"' in rules[GAP]["expr"]


def test_fires_and_does_not_fire(rule_file: Path, tmp_path: Path) -> None:
    # p0: 40 records behind from minute 2 to 10, then caught up -> pending at 3m, firing from 7m, gone at 12m.
    # p1: lag of exactly 15 (not above) for 10 minutes, then spikes above for only 3 minutes -> never fires.
    # p2: the partition moves from replica a to replica b at 6m while lagging: still one alert, still firing.
    run_cases(
        rule_file,
        tmp_path,
        [
            lag_series("0", "0 0 40x8 0x5"),
            lag_series("1", "15x10 90x3 0x2"),
            lag_series("2", "30x6 _x9"),
            lag_series("2", "_x6 30x9", instance="observer-b:8080"),
        ],
        alert_rule_test=[
            {"eval_time": "4m", "alertname": LAG, "exp_alerts": []},
            {"eval_time": "8m", "alertname": LAG, "exp_alerts": [firing("0", 40), firing("2", 30)]},
            {"eval_time": "12m", "alertname": LAG, "exp_alerts": [firing("2", 30)]},
            {"eval_time": "14m", "alertname": LAG, "exp_alerts": [firing("2", 30)]},
        ],
        promql_expr_test=[
            alerts("pending", "3m", ["0", "2"]),
            alerts("pending", "12m", ["1"]),
            alerts("firing", "7m", ["0", "2"]),
        ],
    )


def test_broken_expectation_is_caught(rule_file: Path, tmp_path: Path) -> None:
    """The harness can fail: a lag that never exceeds the threshold must not be reported as firing."""
    case = {
        "interval": "1m",
        "input_series": [lag_series("0", "10x10")],
        "alert_rule_test": [{"eval_time": "9m", "alertname": LAG, "exp_alerts": [firing("0", 10)]}],
    }
    assert promtool_test(tmp_path / "broken.yaml", [rule_file], "1m", [case]).returncode != 0


def run_cases(rule_file: Path, tmp_path: Path, input_series: list[dict[str, str]], **checks: Any) -> None:
    case = {"interval": "1m", "input_series": input_series, **checks}
    assert_passes(promtool_test(tmp_path / "observer-rules-test.yaml", [rule_file], "1m", [case]))


def seconds_series(partition: str, values: str) -> dict[str, str]:
    return {
        "series": f'observer_lag_seconds{{spark_job="passthrough", topic="visits", partition="{partition}",'
        ' instance="observer-a:8080", job="observer"}',
        "values": values,
    }


def test_lag_seconds_fires_above_the_threshold_only(rule_file: Path, tmp_path: Path) -> None:
    # p0: the oldest waiting record is 300 s old from minute 1 to 10 -> firing from 6m, gone at 12m.
    # p1: exactly 120 s (not above) for 12 minutes -> never; p2: 600 s for only 3 minutes -> never.
    late = {
        "exp_labels": {
            "severity": "warning",
            "spark_job": "passthrough",
            "topic": "visits",
            "partition": "0",
        },
        "exp_annotations": {
            "runbook_url": RUNBOOK + "passthrough-lag-seconds",
            "summary": "passthrough late on visits partition 0",
            "description": "The oldest record of visits partition 0 not yet committed by passthrough is"
            " 5m 0s old, above its threshold for 5m.",
        },
    }
    run_cases(
        rule_file,
        tmp_path,
        [
            seconds_series("0", "0 300x9 0x3"),
            seconds_series("1", "120x12"),
            seconds_series("2", "0 600x2 0x9"),
        ],
        alert_rule_test=[
            {"eval_time": "5m", "alertname": LAG_SECONDS, "exp_alerts": []},
            {"eval_time": "6m", "alertname": LAG_SECONDS, "exp_alerts": [late]},
            {"eval_time": "10m", "alertname": LAG_SECONDS, "exp_alerts": [late]},
            {"eval_time": "12m", "alertname": LAG_SECONDS, "exp_alerts": []},
        ],
    )


EVALUATION_DESCRIPTIONS = {
    "stall": "The committed offset of passthrough on visits partition {p} has not moved for a whole"
    " evaluation window while records wait.",
    "stop": "passthrough has committed no batch for longer than the evaluation window while records of"
    " visits partition {p} keep arriving.",
    "rewind": "The committed offset of passthrough on visits partition {p} went backwards (checkpoint"
    " restored or reset): records are read again.",
}


def evaluation_series(
    partition: str, status: str, values: str, instance: str = "observer-a:8080"
) -> dict[str, str]:
    return {
        "series": f'observer_lag_evaluation{{spark_job="passthrough", topic="visits",'
        f' partition="{partition}", status="{status}", instance="{instance}", job="observer"}}',
        "values": values,
    }


@pytest.mark.parametrize("status", sorted(EVALUATION_ALERTS))
def test_each_evaluation_alert_fires_for_its_status_only(
    status: str, rule_file: Path, tmp_path: Path
) -> None:
    alert = EVALUATION_ALERTS[status]
    other = "ok" if status != "ok" else "warn"
    # p0: the status holds from minute 2 to 8 -> pending at 2m, firing from 3m to 8m, gone at 10m.
    # p1: the status for a single evaluation (shorter than `for`) -> never fires.
    # p2: another status holds the whole time (its own series is 0) -> never fires.
    # p3: the partition moves from replica a to b at 5m while in the status -> one alert, still firing.
    # p4: warn, which no rule alerts on, for the whole time -> never fires.
    # p5: each other alerted status for the whole time -> not this alert.
    series = [
        evaluation_series("0", status, "0 0 1x6 0x4"),
        evaluation_series("0", other, "1 1 0x6 1x4"),
        evaluation_series("1", status, "0 0 1 0x9"),
        evaluation_series("2", status, "0x12"),
        evaluation_series("2", other, "1x12"),
        evaluation_series("3", status, "1x4 _x8"),
        evaluation_series("3", status, "_x4 1x8", instance="observer-b:8080"),
        evaluation_series("4", "warn", "1x12"),
        *[evaluation_series("5", s, "1x12") for s in EVALUATION_ALERTS if s != status],
    ]
    severity = "warning" if status == "rewind" else "critical"
    cases = [
        {
            "exp_labels": {
                "severity": severity,
                "spark_job": "passthrough",
                "topic": "visits",
                "partition": p,
            },
            "exp_annotations": {
                "runbook_url": RUNBOOK + alert.replace(" ", "-"),
                "summary": f"{alert} on visits partition {p}",
                "description": EVALUATION_DESCRIPTIONS[status].format(p=p),
            },
        }
        for p in ("0", "3")
    ]
    run_cases(
        rule_file,
        tmp_path,
        series,
        alert_rule_test=[
            {"eval_time": "2m", "alertname": alert, "exp_alerts": cases[1:]},
            {"eval_time": "4m", "alertname": alert, "exp_alerts": cases},
            {"eval_time": "7m", "alertname": alert, "exp_alerts": cases},
            {"eval_time": "10m", "alertname": alert, "exp_alerts": cases[1:]},
        ],
        promql_expr_test=[
            {
                "expr": f'ALERTS{{alertname="{alert}", alertstate="pending"}}',
                "eval_time": "2m",
                "exp_samples": [
                    {
                        "labels": f'ALERTS{{alertname="{alert}", alertstate="pending", partition="{p}",'
                        f' severity="{severity}", spark_job="passthrough", topic="visits"}}',
                        "value": 1,
                    }
                    for p in ("0", "1")
                ],
            }
        ],
    )


def field_series(
    metric: str, partition: str, field: str, values: str, instance: str = "observer-a:8080"
) -> dict[str, str]:
    """One per-field score series of the observer (window-to-window drift or drift from the reference)."""
    return {
        "series": f'{metric}{{job="passthrough", topic="processed_visits",'
        f' partition="{partition}", field="{field}", instance="{instance}"}}',
        "values": values,
    }


def drift_series(
    partition: str, field: str, values: str, instance: str = "observer-a:8080"
) -> dict[str, str]:
    return field_series("observer_field_drift", partition, field, values, instance)


def field_alert_labels(partition: str, field: str) -> dict[str, str]:
    return {
        "severity": "warning",
        "job": "passthrough",
        "topic": "processed_visits",
        "partition": partition,
        "field": field,
    }


def drifted(partition: str, field: str, value: float) -> dict[str, Any]:
    return {
        "exp_labels": field_alert_labels(partition, field),
        "exp_annotations": {
            "runbook_url": RUNBOOK + "field-drift",
            "summary": f"Field {field} drifted on processed_visits partition {partition}",
            "description": f"The distribution of {field} in the last window of processed_visits partition"
            f" {partition} is {value} away from the window before, above 0.25.",
        },
    }


def test_drift_fires_on_one_window_above_the_threshold_and_not_at_it(rule_file: Path, tmp_path: Path) -> None:
    # p0 page: stable scores, one window (2 samples) at 0.44 after a shift, then stable -> fires 4m-5m only.
    # p0 user_id: exactly the threshold (not above) all along -> never fires.
    # p1 page: 0.3 while owned by replica a, then by replica b (a rebalance) -> one alert, same identity.
    run_cases(
        rule_file,
        tmp_path,
        [
            drift_series("0", "page", "0.05x3 0.44x1 0.06x5"),
            drift_series("0", "user_id", "0.25x9"),
            drift_series("1", "page", "0.3x3 _x6"),
            drift_series("1", "page", "_x3 0.3x6", instance="observer-b:8080"),
        ],
        alert_rule_test=[
            {"eval_time": "2m", "alertname": DRIFT, "exp_alerts": [drifted("1", "page", 0.3)]},
            {
                "eval_time": "4m",
                "alertname": DRIFT,
                "exp_alerts": [drifted("0", "page", 0.44), drifted("1", "page", 0.3)],
            },
            {"eval_time": "6m", "alertname": DRIFT, "exp_alerts": [drifted("1", "page", 0.3)]},
        ],
    )


def reference_series(
    partition: str, field: str, values: str, instance: str = "observer-a:8080"
) -> dict[str, str]:
    return field_series("observer_field_drift_reference", partition, field, values, instance)


def drifted_from_reference(partition: str, field: str, value: float) -> dict[str, Any]:
    return {
        "exp_labels": field_alert_labels(partition, field),
        "exp_annotations": {
            "runbook_url": RUNBOOK + "field-drift-from-reference",
            "summary": f"Field {field} drifted from its reference on processed_visits partition {partition}",
            "description": f"The distribution of {field} in the last window of processed_visits partition"
            f" {partition} is {value} away from the partition's pinned reference, above 0.25 for 5m.",
        },
    }


def test_drift_from_reference_fires_when_the_score_stays_above_the_threshold_for_5m(
    rule_file: Path, tmp_path: Path
) -> None:
    # p0 page: a slow drift climbing past the threshold at minute 3 and staying -> firing from 8m.
    # p0 user_id: one odd window above, then back -> pending only, never fires.
    # p1 page: above while owned by replica a, then by replica b (a rebalance) -> one alert from 5m.
    run_cases(
        rule_file,
        tmp_path,
        [
            reference_series("0", "page", "0.1 0.15 0.2 0.3 0.32 0.34 0.36 0.38 0.4 0.42 0.44"),
            reference_series("0", "user_id", "0.05 0.05 0.4 0.05x8"),
            reference_series("1", "page", "0.3x3 _x8"),
            reference_series("1", "page", "_x3 0.3x8", instance="observer-b:8080"),
        ],
        alert_rule_test=[
            {"eval_time": "4m", "alertname": DRIFT_REFERENCE, "exp_alerts": []},
            {
                "eval_time": "6m",
                "alertname": DRIFT_REFERENCE,
                "exp_alerts": [drifted_from_reference("1", "page", 0.3)],
            },
            {
                "eval_time": "9m",
                "alertname": DRIFT_REFERENCE,
                "exp_alerts": [
                    drifted_from_reference("0", "page", 0.42),
                    drifted_from_reference("1", "page", 0.3),
                ],
            },
        ],
    )


def read_series(partition: str, values: str) -> dict[str, str]:
    return {
        "series": f'streaming_batch_source_end_offset{{job="passthrough", instance="passthrough-0",'
        f' topic="visits", partition="{partition}"}}',
        "values": values,
    }


def counted_series(partition: str, values: str) -> dict[str, str]:
    return {
        "series": f'observer_counted_offset{{topic="processed_visits", partition="{partition}",'
        ' instance="observer-a:8080", job="observer"}',
        "values": values,
    }


def incomplete(partition: str, value: int) -> dict[str, Any]:
    return {
        "exp_labels": {"severity": "warning", "partition": partition, "namespace": NAMESPACE},
        "exp_annotations": {
            "runbook_url": RUNBOOK + "observer-incomplete",
            "summary": f"Observer behind the passthrough on partition {partition}",
            "description": f"{value} records the passthrough read from partition {partition} more than 3m"
            " ago are not counted by the observer, above 0 for 5m.",
        },
    }


def test_completeness_gap_is_zero_while_the_observer_keeps_up_and_grows_once_it_stops(
    rule_file: Path, tmp_path: Path
) -> None:
    # The passthrough reads 100 records a minute on p0, p1, p4 and 10 on p3; none arrive on p2.
    # p0: the observer counts each minute what was read the minute before -> gap 0 throughout.
    # p1: the same until the observer stops at 9m (position 800) -> gap from 12m, firing from 17m.
    # p2: nothing read, nothing counted -> gap 0, no alert.
    # p3: never counted by the observer -> everything read is missing: firing from 9m.
    # p4: the copy holds 50 records twice (a replay), so the count runs ahead -> gap 0, never negative.
    run_cases(
        rule_file,
        tmp_path,
        [
            read_series("0", "0+100x30"),
            counted_series("0", "0 0+100x29"),
            read_series("1", "0+100x30"),
            counted_series("1", "0 0+100x8 _x21"),
            read_series("2", "0x30"),
            read_series("3", "0+10x30"),
            read_series("4", "0+100x30"),
            counted_series("4", "50+100x30"),
        ],
        alert_rule_test=[
            {"eval_time": "8m", "alertname": INCOMPLETE, "exp_alerts": []},
            {"eval_time": "10m", "alertname": INCOMPLETE, "exp_alerts": [incomplete("3", 70)]},
            {"eval_time": "16m", "alertname": INCOMPLETE, "exp_alerts": [incomplete("3", 130)]},
            {
                "eval_time": "20m",
                "alertname": INCOMPLETE,
                "exp_alerts": [incomplete("1", 900), incomplete("3", 170)],
            },
        ],
        promql_expr_test=[
            {
                "expr": GAP,
                "eval_time": "10m",
                "exp_samples": [
                    {"labels": f'{GAP}{{namespace="{NAMESPACE}", partition="{p}"}}', "value": value}
                    for p, value in (("0", 0), ("1", 0), ("2", 0), ("3", 70), ("4", 0))
                ],
            },
            {
                "expr": f'ALERTS{{alertname="{INCOMPLETE}", alertstate="pending"}}',
                "eval_time": "12m",
                "exp_samples": [
                    {
                        "labels": f'ALERTS{{alertname="{INCOMPLETE}", alertstate="pending",'
                        f' namespace="{NAMESPACE}", partition="1", severity="warning"}}',
                        "value": 1,
                    }
                ],
            },
        ],
    )


def test_a_watched_job_with_its_own_threshold_is_held_to_it_and_the_others_to_the_default(
    tmp_path: Path,
) -> None:
    """observer.watchedJobs: `sessions` lags at 40 (below its own 100: quiet) and 150 (above: fires), the
    passthrough at 40 (above the default 15: fires), `audit` (no threshold of its own) at 40 (fires)."""
    watched = [
        {"name": "sessions", "checkpoint": "s3a://c/s", "sourceTopic": "visits",
         "alerts": {"lagThresholdOffsets": 100}},
        {"name": "audit", "checkpoint": "s3a://c/a", "sourceTopic": "visits"},
    ]  # fmt: skip
    values = tmp_path / "watched.yaml"
    values.write_text(yaml.safe_dump({"observer": {"watchedJobs": watched}}))
    (rules,) = [p for p in render_rule_files(tmp_path, values_files=[values]) if p.name == RULE_FILE]
    assert_passes(run_promtool("check", "rules", str(rules)))
    case = {
        "interval": "1m",
        "input_series": [
            lag_series("0", "40x10", spark_job="sessions"),
            lag_series("1", "150x10", spark_job="sessions"),
            lag_series("0", "40x10"),
            lag_series("0", "40x10", spark_job="audit"),
        ],
        "alert_rule_test": [
            {
                "eval_time": "8m",
                "alertname": LAG,
                "exp_alerts": [firing("1", 150, "sessions"), firing("0", 40), firing("0", 40, "audit")],
            }
        ],
    }
    assert_passes(promtool_test(tmp_path / "per-job.yaml", [rules], "1m", [case]))
