"""The `helm test` pod's checks (charts/streamwatch/files/tests/check.py) run as the chart renders them
against real components: a Kafka broker, a Pushgateway and a real Elasticsearch node with basic auth.
They pass when the release works and fail, naming what is missing, when it does not (a wrong password
included); the Elasticsearch password is never printed."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from streamwatch_common.spark.batch_metrics import STREAMING_BATCH, VISITS_SYNC
from streamwatch_dev.chart import render
from streamwatch_dev.elasticsearch import ElasticsearchNode
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.prometheus import Pushgateway
from streamwatch_dev.services import VENV_BIN


def _rendered_check(values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The test pod's script and plan as the chart renders them with ``values``."""
    (pod,) = [m for m in render(values) if m["kind"] == "Pod"]
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


def _push(pushgateway: Pushgateway, job: str, metric: str) -> None:
    registry = CollectorRegistry()
    Gauge(metric, "Duration of the last micro-batch.", registry=registry).set(1234)
    push_to_gateway(pushgateway.url.removeprefix("http://"), job=job, registry=registry)


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


def _local(plan: dict[str, Any], pushgateway: Pushgateway, deadline: int) -> dict[str, Any]:
    """The plan with cluster DNS names swapped for the local components (the names stay the chart's)."""
    plan = dict(plan, deadlineSeconds=deadline, pushgateway=pushgateway.url)
    plan["http"] = {name: f"{pushgateway.url}/-/ready" for name in plan["http"]}
    return plan


def test_checks_pass_when_everything_users_depend_on_is_there(
    names: dict[str, str], kafka: KafkaBroker, elasticsearch: ElasticsearchNode, pushgateway: Pushgateway
) -> None:
    script, plan = _rendered_check(names)
    _push(pushgateway, names["visitsWriter.settings.push_job"], VISITS_SYNC.duration)
    _push(pushgateway, names["passthrough.settings.push_job"], STREAMING_BATCH.duration)
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
    _push(pushgateway, names["visitsWriter.settings.push_job"], VISITS_SYNC.duration)
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
        f"no streaming_batch_duration_seconds pushed by job {names['passthrough.settings.push_job']}" in f
        for f in failed
    )
    assert any(f"index missing-{suffix} does not exist" in f for f in failed)
    assert any("partition counts differ" in f for f in failed)


def test_wrong_elasticsearch_password_fails_the_index_check_without_printing_it(
    names: dict[str, str], kafka: KafkaBroker, elasticsearch: ElasticsearchNode, pushgateway: Pushgateway
) -> None:
    script, plan = _rendered_check(names)
    _push(pushgateway, names["visitsWriter.settings.push_job"], VISITS_SYNC.duration)
    _push(pushgateway, names["passthrough.settings.push_job"], STREAMING_BATCH.duration)
    wrong = "wrong-" + uuid.uuid4().hex
    code, output = _run(script, _local(plan, pushgateway, 1), kafka, elasticsearch, password=wrong)
    assert code == 1, output
    assert wrong not in output
    failed = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1, output
    assert f"index {names['observer.settings.index']}: HTTP 401" in failed[0], output
