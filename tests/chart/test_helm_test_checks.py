"""The `helm test` pod's checks (charts/streamwatch/files/tests/check.py) run as the chart renders them
against real components: a Kafka broker, a Pushgateway and a real Elasticsearch node with basic auth.
They pass when the release works and fail, naming what is missing, when it does not (a wrong password
included); the Elasticsearch password is never printed."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from streamwatch_dev.chart import render
from streamwatch_dev.elasticsearch import ElasticsearchNode
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.prometheus import Pushgateway
from streamwatch_dev.services import VENV_BIN


def _rendered_check(values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The test pod's script and plan as the chart renders them with ``values``."""
    (pod,) = [
        m
        for m in render(values)
        if m["kind"] == "Pod" and m["metadata"]["annotations"]["helm.sh/hook"] == "test"
    ]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    return container["command"][2], json.loads(env["STREAMWATCH_TEST_PLAN"]["value"])


def _run(
    script: str,
    plan: dict[str, Any],
    kafka: KafkaBroker,
    elasticsearch: ElasticsearchNode,
    password: str | None = None,
) -> tuple[int, str]:
    env = {
        "PATH": str(VENV_BIN),
        "STREAMWATCH_TEST_PLAN": json.dumps(plan),
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        **elasticsearch.env(),
    }
    if password is not None:
        env["ELASTICSEARCH_PASSWORD"] = password
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert env["ELASTICSEARCH_PASSWORD"] not in output, "the Elasticsearch password was printed"
    return result.returncode, output


def _push(pushgateway: Pushgateway, plan: dict[str, Any], job: str, instance: str | None = None) -> None:
    """Push a batch duration for ``job`` to the group the chart gives it (or under ``instance``)."""
    (group,) = [g for g in plan["pushed"] if g["job"] == job]
    registry = CollectorRegistry()
    Gauge(group["metric"], "Duration of the last micro-batch.", ["pod"], registry=registry).labels(
        "pod-a"
    ).set(1234)
    push_to_gateway(
        pushgateway.url.removeprefix("http://"),
        job=job,
        registry=registry,
        grouping_key={"instance": instance or group["instance"]},
    )


@pytest.fixture
def names(kafka: KafkaBroker, elasticsearch: ElasticsearchNode, pushgateway: Pushgateway) -> dict[str, str]:
    """Random topic, index and job names, the topics created at 3 partitions each, the index created."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "kafka.topics.visits.name": kafka.create_topic(f"visits-{suffix}", partitions=3),
        "kafka.topics.processedVisits.name": kafka.create_topic(f"processed-{suffix}", partitions=3),
        "observer.settings.index": f"observations-{suffix}",
        "visitsWriter.settings.push_job": f"writer-{suffix}",
        "passthrough.settings.push_job": f"passthrough-{suffix}",
    }
    elasticsearch.request("PUT", f"/{names['observer.settings.index']}")
    return names


def _check_with_both_groups_pushed(
    names: dict[str, str], pushgateway: Pushgateway
) -> tuple[str, dict[str, Any]]:
    """The check rendered for ``names``, the visits writer and the passthrough each pushed to its group."""
    script, plan = _rendered_check(names)
    for job in ("visitsWriter.settings.push_job", "passthrough.settings.push_job"):
        _push(pushgateway, plan, names[job])
    return script, plan


def _local(plan: dict[str, Any], pushgateway: Pushgateway, deadline: int) -> dict[str, Any]:
    """The plan with cluster DNS names swapped for the local components (the names stay the chart's)."""
    plan = dict(plan, deadlineSeconds=deadline, pushgateway=pushgateway.url)
    plan["http"] = {name: f"{pushgateway.url}/-/ready" for name in plan["http"]}
    return plan


def test_checks_pass_when_everything_users_depend_on_is_there(
    names: dict[str, str], kafka: KafkaBroker, elasticsearch: ElasticsearchNode, pushgateway: Pushgateway
) -> None:
    script, plan = _check_with_both_groups_pushed(names, pushgateway)
    code, output = _run(script, _local(plan, pushgateway, 30), kafka, elasticsearch)
    assert code == 0, output
    for expected in (
        "ok       observer ready",
        f"ok       kafka topics {names['kafka.topics.visits.name']}",
        f"ok       elasticsearch index {names['observer.settings.index']}",
        f"ok       visits_sync_duration from job {names['visitsWriter.settings.push_job']}",
        f"ok       streaming_batch_duration_seconds from job {names['passthrough.settings.push_job']}",
    ):
        assert expected in output, output


def test_checks_fail_and_say_what_is_missing(
    names: dict[str, str], kafka: KafkaBroker, elasticsearch: ElasticsearchNode, pushgateway: Pushgateway
) -> None:
    # Only the visits writer pushed; the passthrough has not; the index is another one; the processed
    # topic has a different partition count.
    _push(pushgateway, _rendered_check(names)[1], names["visitsWriter.settings.push_job"])
    suffix = uuid.uuid4().hex[:8]
    values = dict(
        names,
        **{
            "observer.settings.index": f"missing-{suffix}",
            "kafka.topics.processedVisits.name": kafka.create_topic(f"other-{suffix}", partitions=2),
        },
    )
    script, plan = _rendered_check(values)
    code, output = _run(script, _local(plan, pushgateway, 1), kafka, elasticsearch)
    assert code == 1, output
    assert f"ok       visits_sync_duration from job {names['visitsWriter.settings.push_job']}" in output
    failed = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 3, output
    assert any(
        f"no streaming_batch_duration_seconds in job {names['passthrough.settings.push_job']}'s group" in f
        for f in failed
    )
    assert any(f"index missing-{suffix} does not exist" in f for f in failed)
    assert any("partition counts differ" in f for f in failed)


def test_wrong_elasticsearch_password_fails_the_index_check_without_printing_it(
    names: dict[str, str], kafka: KafkaBroker, elasticsearch: ElasticsearchNode, pushgateway: Pushgateway
) -> None:
    script, plan = _check_with_both_groups_pushed(names, pushgateway)
    wrong = "wrong-" + uuid.uuid4().hex
    code, output = _run(script, _local(plan, pushgateway, 1), kafka, elasticsearch, password=wrong)
    assert code == 1, output
    assert wrong not in output
    failed = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1, output
    assert f"index {names['observer.settings.index']}: HTTP 401" in failed[0], output


def _pushed_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "from job" in line]


def test_a_group_pushed_under_a_pod_name_does_not_pass(
    names: dict[str, str], kafka: KafkaBroker, elasticsearch: ElasticsearchNode, pushgateway: Pushgateway
) -> None:
    """Earlier chart versions grouped by pod name, and every replaced pod's group stayed on the
    Pushgateway: only the job's own group (the instance the chart gives every pod of the job) counts."""
    script, plan = _rendered_check(names)
    writer, passthrough = names["visitsWriter.settings.push_job"], names["passthrough.settings.push_job"]
    _push(pushgateway, plan, writer, instance="sw-streamwatch-visits-writer-5d8f7c9b4-x2x7q")
    _push(pushgateway, plan, passthrough)
    code, output = _run(script, _local(plan, pushgateway, 1), kafka, elasticsearch)
    assert code == 1, output
    assert _pushed_lines(output) == [
        f"ok       streaming_batch_duration_seconds from job {passthrough}",
        f"FAILED   visits_sync_duration from job {writer}: no visits_sync_duration in job {writer}'s group"
        " default/sw-streamwatch-visits-writer yet (its first micro-batch is not done?)",
    ], output


def test_a_group_no_pod_pushes_to_any_more_fails_after_the_stalled_threshold(
    names: dict[str, str], kafka: KafkaBroker, elasticsearch: ElasticsearchNode, pushgateway: Pushgateway
) -> None:
    """A pod that is gone leaves its last values in the job's group: they pass only while they are
    younger than alerts.stalled.afterSeconds (5 s here), and pass again once a new pod pushes."""
    script, plan = _rendered_check(
        {**names, "alerts.stalled.afterSeconds": "5", "passthrough.enabled": "false"}
    )
    assert plan["maxPushAgeSeconds"] == 5
    # Only the Pushgateway check, so that a run takes well under the 5 s on a busy machine.
    plan = dict(_local(plan, pushgateway, 1), http={}, kafkaTopics=[], elasticsearchIndex="")
    writer = names["visitsWriter.settings.push_job"]
    _push(pushgateway, plan, writer)
    code, output = _run(script, plan, kafka, elasticsearch)
    assert code == 0, output
    time.sleep(6)  # the pod is gone: nothing pushes to the group
    code, output = _run(script, plan, kafka, elasticsearch)
    assert code == 1, output
    (failed,) = _pushed_lines(output)
    assert re.fullmatch(
        rf"FAILED   visits_sync_duration from job {writer}: job {writer}'s group"
        r" default/sw-streamwatch-visits-writer was last pushed \d+ s ago, more than 5 s"
        r" \(alerts.stalled.afterSeconds\): no pod of the job is pushing",
        failed,
    ), failed
    _push(pushgateway, plan, writer)  # a new pod of the writer takes the group over
    code, output = _run(script, plan, kafka, elasticsearch)
    assert code == 0, output
