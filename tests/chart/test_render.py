"""helm lint, helm template and strict schema validation of every values variant."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart.conftest import VARIANTS

from streamwatch_common.settings_doc import registered_settings
from streamwatch_common.spark.batch_metric_names import STREAMING_BATCH, VISITS_SYNC
from streamwatch_dev.chart import CHART, helm, render
from streamwatch_dev.services import VENV_BIN
from streamwatch_dev.workloads import service_containers

STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic"}
# Unknown to kubernetes-validate too; test_monitoring.py validates them against the operator's CRDs.
PROMETHEUS_OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Likewise; test_keda.py validates them against KEDA's vendored CRDs.
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_passes(variant: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in VARIANTS[variant]:
        args += ["-f", str(path)]
    output = helm(*args)
    assert "0 chart(s) failed" in output


def test_lint_rejects_unknown_and_latest_values() -> None:
    """The schema has teeth: a typo'd key and an unpinned tag both fail."""
    for bad in ("visitsWriter.simulatedLatency=15", "image.tag=latest", "logging.format=xml"):
        with pytest.raises(RuntimeError, match="values don't meet the specifications of the schema"):
            helm("template", "sw", str(CHART), "--set", bad)


@pytest.mark.parametrize("kube_version", ["1.30", "1.33"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_manifests_pass_strict_validation(variant: str, kube_version: str, tmp_path: Path) -> None:
    args = ["template", "sw", str(CHART), "--kube-version", f"{kube_version}.0"]
    for path in VARIANTS[variant]:
        args += ["-f", str(path)]
    manifest_file = tmp_path / "manifests.yaml"
    manifest_file.write_text(helm(*args))
    result = subprocess.run(
        [str(VENV_BIN / "kubernetes-validate"), "-k", kube_version, "--strict", str(manifest_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    problems = [line for line in output.splitlines() if line.startswith(("ERROR", "FAIL"))]
    assert problems == [], output
    # Only the Strimzi, prometheus-operator and KEDA custom resources may be unknown to the validator.
    known_unknown = (
        [f"kind {kind} with api version kafka.strimzi.io/v1" for kind in STRIMZI_KINDS]
        + [f"kind {kind} with api version monitoring.coreos.com/v1" for kind in PROMETHEUS_OPERATOR_KINDS]
        + [f"kind {kind} with api version keda.sh/v1alpha1" for kind in KEDA_KINDS]
    )
    for line in output.splitlines():
        if line.startswith("WARN"):
            assert any(expected in line for expected in known_unknown), line
    kinds = {doc["kind"] for doc in yaml.safe_load_all(manifest_file.read_text()) if doc}
    assert {"Deployment", "Service", "Secret", "ConfigMap"} <= kinds


def test_validation_catches_an_unknown_field(tmp_path: Path) -> None:
    """Proves the strict validation above can fail: a misspelt container field is refused."""
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {"containers": [{"name": "c", "image": "x:1", "imagePullPolcy": "Always"}]},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = subprocess.run(
        [str(VENV_BIN / "kubernetes-validate"), "-k", "1.33", "--strict", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0


def _notes(tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as `helm install` prints it (helm template skips it), rendered from a copy of the chart."""
    import shutil

    chart = tmp_path / "streamwatch"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "files" / "notes.txt").write_text(notes)
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
        '    {{- tpl (.Files.Get "files/notes.txt") . | nindent 4 }}\n'
    )
    args = [arg for value in sets for arg in ("--set", value)]
    rendered = yaml.safe_load(
        helm("template", "sw", str(chart), *args, "--show-only", "templates/zz-notes.yaml")
    )
    return str(rendered["data"]["notes"])


def test_notes_render_ready_to_run_commands(tmp_path: Path) -> None:
    """NOTES.txt renders and prints the commands users need."""
    text = _notes(tmp_path)
    for expected in (
        "port-forward svc/sw-streamwatch-grafana 3000:3000",
        "get secret sw-streamwatch-grafana -o jsonpath='{.data.admin-password}'",
        "logs deploy/sw-streamwatch-visits-writer",
        "scale deployment/sw-streamwatch-observer --replicas=3",
        "keeps the scaled count",
        "--set visitsWriter.settings.simulated_latency_seconds=15",
        'instance "default/sw-streamwatch-visits-writer") and takes it over',
        "helm -n default test sw",
        "ReadWriteMany",
    ):
        assert expected in text, f"{expected!r} missing from NOTES:\n{text}"


def test_notes_say_nothing_of_a_checkpoint_volume_on_object_storage(tmp_path: Path) -> None:
    text = _notes(
        tmp_path,
        "passthrough.checkpoint.url=s3a://checkpoints/passthrough",
        "objectStore.endpoint=http://store:8333",
        "objectStore.credentialsSecret.name=store",
    )
    assert "helm -n default test sw" in text
    assert "ReadWriteOnce" not in text


# --- helm test: the test pod checks what users depend on -----------------------------------------------
def _test_pod(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (pod,) = [
        m for m in manifests if m["kind"] == "Pod" and "test" in m["metadata"]["annotations"]["helm.sh/hook"]
    ]
    return pod


def _plan(pod: dict[str, Any]) -> dict[str, Any]:
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    return dict(json.loads(env["STREAMWATCH_TEST_PLAN"]["value"]))


def test_helm_test_checks_observer_kafka_index_and_both_pushing_jobs() -> None:
    """Not just four health endpoints: the observer is ready, Kafka answers with both topics, the
    observation index exists and both Spark jobs push their batch duration, with the services' names."""
    manifests = render()
    pod = _test_pod(manifests)
    plan = _plan(pod)
    settings = registered_settings()
    assert plan["http"] == {
        "observer ready": "http://sw-streamwatch-observer-metrics:8080/readyz",
        "profile publisher": "http://sw-streamwatch-profile-publisher:8000/healthz",
        "prometheus": "http://sw-streamwatch-prometheus:9090/-/ready",
        "pushgateway": "http://sw-streamwatch-pushgateway:9091/-/ready",
        "grafana": "http://sw-streamwatch-grafana:3000/api/health",
    }
    # /readyz goes through the observer's headless Service: its DNS name lists ready replicas only.
    (service,) = [m for m in manifests if m["metadata"]["name"] == "sw-streamwatch-observer-metrics"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["ports"][0]["port"] == 8080
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "observer"
    assert plan["kafkaTopics"] == ["visits", "processed_visits"]
    assert plan["elasticsearchIndex"] == settings["observer"].model_fields["index"].default
    assert plan["elasticsearchIndex"] == "visits_observation_stats"
    assert plan["pushgateway"] == "http://sw-streamwatch-pushgateway:9091"
    # Each job's one group: the push job and instance the chart gives the job's pods, which must have
    # pushed within the "stalled" alert's threshold (a gone pod's group cannot pass for long).
    assert plan["pushed"] == [
        {
            "job": settings["visits-writer"].model_fields["push_job"].default,
            "instance": "default/sw-streamwatch-visits-writer",
            "metric": VISITS_SYNC.duration,
        },
        {
            "job": settings["passthrough"].model_fields["push_job"].default,
            "instance": "default/sw-streamwatch-passthrough",
            "metric": STREAMING_BATCH.duration,
        },
    ]
    assert plan["pushed"][0]["job"] == "visits_to_delta_synchronizer"
    assert plan["maxPushAgeSeconds"] == 300
    for group, component, prefix in (
        (plan["pushed"][0], "visits-writer", "VISITS_WRITER_"),
        (plan["pushed"][1], "passthrough", "PASSTHROUGH_"),
    ):
        (c,) = [c for c in service_containers(manifests, component) if not c.init]
        assert c.env()[f"{prefix}PUSH_JOB"]["value"] == group["job"]
        assert c.env()[f"{prefix}INSTANCE"]["value"] == group["instance"]
    # Credentials: Kafka as every service gets it, the Elasticsearch password only from its Secret.
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["KAFKA_BOOTSTRAP_SERVERS"]["value"] == "sw-streamwatch-kafka-kafka-bootstrap:9092"
    assert env["ELASTICSEARCH_PASSWORD"] == {
        "name": "ELASTICSEARCH_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "sw-streamwatch-elasticsearch", "key": "password"}},
    }
    # The script run is the chart's files/tests/check.py, and it is valid Python.
    command = pod["spec"]["containers"][0]["command"]
    assert command[:2] == ["python", "-c"]
    assert command[2].strip() == (CHART / "files" / "tests" / "check.py").read_text().strip()
    compile(command[2], "check.py", "exec")


def test_helm_test_names_follow_the_values() -> None:
    names = {
        "kafka.topics.visits.name": "raw",
        "kafka.topics.processedVisits.name": "copied",
        "observer.settings.index": "obs",
        "visitsWriter.settings.push_job": "vw",
        "passthrough.settings.push_job": "pt",
        "passthrough.settings.instance": "pt-group",
        "alerts.stalled.afterSeconds": 42,
        "opsPort": 9000,
        "tests.timeoutSeconds": 60,
    }
    manifests = render(names)
    plan = _plan(_test_pod(manifests))
    assert plan["kafkaTopics"] == ["raw", "copied"]
    assert plan["elasticsearchIndex"] == "obs"
    assert plan["pushed"] == [
        {"job": "vw", "instance": "default/sw-streamwatch-visits-writer", "metric": "visits_sync_duration"},
        {"job": "pt", "instance": "pt-group", "metric": "streaming_batch_duration_seconds"},
    ]
    assert plan["maxPushAgeSeconds"] == 42
    # A job's instance set in its settings is the one rendered, once.
    (passthrough,) = [c for c in service_containers(manifests, "passthrough") if not c.init]
    assert [e["value"] for e in passthrough.spec["env"] if e["name"] == "PASSTHROUGH_INSTANCE"] == [
        "pt-group"
    ]
    assert plan["http"]["observer ready"] == "http://sw-streamwatch-observer-metrics:9000/readyz"
    assert plan["deadlineSeconds"] == 60
    # Disabled components are not checked; an existing Pushgateway and Elasticsearch are.
    external = render(values_files=[CHART / "ci" / "external-infra-values.yaml"])
    plan = _plan(_test_pod(external))
    assert "pushgateway" not in plan["http"]
    assert plan["pushgateway"] == "http://pushgateway.monitoring.svc:9091"
    env = {e["name"]: e for e in _test_pod(external)["spec"]["containers"][0]["env"]}
    assert env["ELASTICSEARCH_URL"]["value"] == "https://elasticsearch.search.svc:9200"
    assert env["ELASTICSEARCH_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "streamwatch-elasticsearch"
    plan = _plan(_test_pod(render({"observer.enabled": "false", "passthrough.enabled": "false"})))
    assert "observer ready" not in plan["http"] and plan["elasticsearchIndex"] == ""
    assert [group["job"] for group in plan["pushed"]] == ["visits_to_delta_synchronizer"]


def test_the_test_pod_outlives_a_passing_test_for_helm_test_logs() -> None:
    """`helm test --logs` reads the pod's logs once it has ended: a pod deleted on success
    (hook-succeeded) made it exit 1 after a passing test. It is replaced when the next test starts."""
    pod = _test_pod(render())
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert pod["spec"]["restartPolicy"] == "Never"


def test_network_policies_let_the_test_pod_reach_the_observer() -> None:
    policies = render({"networkPolicy.enabled": "true"})
    (observer,) = [
        p
        for p in policies
        if p["kind"] == "NetworkPolicy" and p["metadata"]["name"] == "sw-streamwatch-observer"
    ]
    peers = {
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for p in observer["spec"]["ingress"][0]["from"]
    }
    assert peers == {"prometheus", "test"}


def test_the_sasl_password_reaches_every_kafka_client_from_its_secret_and_only_when_set() -> None:
    def kafka_clients(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        clients = {}
        for doc in manifests:
            spec = doc.get("spec", {}).get("template", {}).get("spec") or doc.get("spec", {})
            for container in spec.get("containers", []) if isinstance(spec, dict) else []:
                env = {e["name"]: e for e in container.get("env", [])}
                if "KAFKA_BOOTSTRAP_SERVERS" in env:
                    clients[f"{doc['metadata']['name']}/{container['name']}"] = env
        return clients

    plain = kafka_clients(render())
    assert len(plain) >= 5, plain.keys()  # generator, both Spark jobs, observer, helm test
    assert not [name for name, env in plain.items() if "KAFKA_SASL_PASSWORD" in env]
    sasl = kafka_clients(
        render({"kafka.sasl.passwordSecret": "streamwatch-user", "kafka.sasl.passwordKey": "pw"})
    )
    assert sasl.keys() == plain.keys()
    for name, env in sasl.items():
        assert env["KAFKA_SASL_PASSWORD"] == {
            "name": "KAFKA_SASL_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "streamwatch-user", "key": "pw"}},
        }, name


def test_index_replicas_reach_the_services_that_create_indices() -> None:
    """The bundled Elasticsearch is one node, which can place no replica: the observer and the profile
    publisher create their indices with 0 (green, not yellow). An existing cluster keeps its own default
    unless elasticsearch.indexReplicas says otherwise."""

    def replicas(manifests: list[dict[str, Any]]) -> dict[str, str | None]:
        found = {}
        for service in ("observer", "profile-publisher"):
            (c,) = [c for c in service_containers(manifests, service) if not c.init]
            found[service] = c.env().get("ELASTICSEARCH_INDEX_REPLICAS", {}).get("value")
        return found

    assert replicas(render()) == {"observer": "0", "profile-publisher": "0"}
    assert replicas(render({"elasticsearch.indexReplicas": 1})) == {"observer": "1", "profile-publisher": "1"}
    external = [CHART / "ci" / "external-infra-values.yaml"]
    assert replicas(render(values_files=external)) == {"observer": None, "profile-publisher": None}
    assert replicas(render({"elasticsearch.indexReplicas": 2}, values_files=external)) == {
        "observer": "2",
        "profile-publisher": "2",
    }
