"""KEDA autoscaling of the observer (observer.keda.*): off by default; on, a ScaledObject whose Kafka
trigger names the observer's consumer group and topic, at most one replica per partition, valid against
KEDA's vendored CRD, with a TriggerAuthentication made from the services' SASL settings; refused beside
the chart's own HPA. Also: the HPA example scales on the group's lag the observer exports."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart.conftest import VARIANTS, Manifest, crd_validator, schema_errors
from jsonschema import Draft7Validator

from streamwatch_dev.chart import CHART, helm, parse_manifests, render
from streamwatch_dev.process import REPO_ROOT
from streamwatch_dev.workloads import by_kind, service_containers
from streamwatch_observer import metrics
from streamwatch_observer.settings import ObserverSettings

KEDA = VARIANTS["observer-keda"]
CRDS = REPO_ROOT / "k8s" / "offline" / "keda-crds"
API_VERSION = "keda.sh/v1alpha1"
CRD_FILES = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}
SASL = {
    "observer.keda.enabled": "true",
    "kafka.clientProperties.security\\.protocol": "SASL_SSL",
    "kafka.clientProperties.sasl\\.mechanism": "SCRAM-SHA-512",
    "kafka.clientProperties.sasl\\.username": "observer",
    "kafka.sasl.passwordSecret": "kafka-user",
}


@cache
def _validator(kind: str) -> Draft7Validator:
    return crd_validator(CRDS / CRD_FILES[kind], API_VERSION, kind)


def errors(manifest: Manifest) -> list[str]:
    assert manifest["apiVersion"] == API_VERSION
    return schema_errors(_validator(manifest["kind"]), manifest)


def scaled_object(manifests: list[Manifest]) -> Manifest:
    (found,) = by_kind(manifests, "ScaledObject")
    assert errors(found) == []
    return found


def trigger(manifests: list[Manifest]) -> dict[str, Any]:
    (only,) = scaled_object(manifests)["spec"]["triggers"]
    assert only["type"] == "kafka"
    return dict(only)


def observer_env(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    (container,) = [c for c in service_containers(manifests, "observer") if not c.init]
    return container.env()


def refusal(set_values: dict[str, Any]) -> str:
    """The one line `helm template` fails with."""
    args = ["template", "sw", str(CHART)]
    for key, value in {"observer.keda.enabled": "true", **set_values}.items():
        args += ["--set", f"{key}={value}"]
    with pytest.raises(RuntimeError) as failed:
        helm(*args)
    (line,) = [line for line in str(failed.value).splitlines() if line.startswith("Error:")]
    return line


def test_the_vendored_crds_are_keda_release_files_with_their_licence() -> None:
    readme = (CRDS / "README.md").read_text()
    assert "v2.20.2" in readme and "Apache-2.0" in readme
    assert "Apache License" in (CRDS / "LICENSE").read_text()
    for kind, name in CRD_FILES.items():
        assert name in readme
        _validator(kind)


@pytest.mark.parametrize("variant", sorted(set(VARIANTS) - {"observer-keda"}))
def test_keda_is_off_unless_asked_for(variant: str, rendered: dict[str, list[Manifest]]) -> None:
    for kind in CRD_FILES:
        assert not by_kind(rendered[variant], kind), variant


def test_the_scaled_object_scales_the_observer_on_its_group_lag(rendered: dict[str, list[Manifest]]) -> None:
    manifests = rendered["observer-keda"]
    spec = scaled_object(manifests)["spec"]
    (deployment,) = [
        m
        for m in by_kind(manifests, "Deployment")
        if m["metadata"]["labels"]["app.kubernetes.io/component"] == "observer"
    ]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"], "KEDA's HPA owns the replica count"
    assert not by_kind(manifests, "HorizontalPodAutoscaler"), "KEDA makes its own"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 3)
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {
        "scaleDown": {"stabilizationWindowSeconds": 300}
    }
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in by_kind(manifests, "KafkaTopic")}
    env = observer_env(manifests)
    settings = ObserverSettings.model_construct(
        kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"]["value"]
    )
    meta = trigger(manifests)["metadata"]
    # The group, topic and start position the observer itself uses (its settings and rendered env).
    assert meta["consumerGroup"] == settings.group_id == "streamwatch-observer"
    assert meta["topic"] == env["OBSERVER_TOPIC"]["value"] == "processed_visits"
    assert meta["offsetResetPolicy"] == settings.consumer_config(settings.group_id)["auto.offset.reset"]
    # KEDA's operator runs in its own namespace: the bootstrap Service is named with the release's.
    host, port = env["KAFKA_BOOTSTRAP_SERVERS"]["value"].rsplit(":", 1)
    assert meta["bootstrapServers"] == f"{host}.default.svc:{port}"
    # At most one replica per partition: KEDA's own cap stays on, the bound is within the partitions,
    # and the replica count is rounded to one that spreads the partitions evenly.
    assert meta["allowIdleConsumers"] == "false"
    assert spec["maxReplicaCount"] <= partitions[meta["topic"]]
    assert partitions[meta["topic"]] % spec["maxReplicaCount"] == 0
    assert (
        meta["ensureEvenDistributionOfPartitions"] == "true" and meta["limitToPartitionsWithLag"] == "false"
    )
    assert int(meta["lagThreshold"]) == 10000
    # A plain connection: no TLS, no SASL, nothing to authenticate with.
    assert meta["tls"] == "disable" and "sasl" not in meta
    assert "authenticationRef" not in trigger(manifests)
    assert not by_kind(manifests, "TriggerAuthentication")


def test_group_topic_and_namespace_follow_the_values() -> None:
    args = ["template", "sw", str(CHART), "-n", "streams", "-f", str(KEDA[0])]
    for key, value in {
        "observer.settings.group_id": "my-observers",
        "kafka.topics.processedVisits.name": "copied",
        "observer.keda.lagThreshold": "2500",
        "observer.keda.pollingInterval": "10",
        "observer.keda.ensureEvenDistributionOfPartitions": "false",
        "observer.keda.limitToPartitionsWithLag": "true",
        "observer.keda.maxReplicaCount": "4",
    }.items():
        args += ["--set", f"{key}={value}"]
    manifests = parse_manifests(helm(*args))
    spec = scaled_object(manifests)["spec"]
    meta = trigger(manifests)["metadata"]
    env = observer_env(manifests)
    assert meta["consumerGroup"] == env["OBSERVER_GROUP_ID"]["value"] == "my-observers"
    assert meta["topic"] == env["OBSERVER_TOPIC"]["value"] == "copied"
    assert meta["bootstrapServers"] == "sw-streamwatch-kafka-kafka-bootstrap.streams.svc:9092"
    assert (meta["lagThreshold"], spec["pollingInterval"], spec["maxReplicaCount"]) == ("2500", 10, 4)
    assert (
        meta["limitToPartitionsWithLag"] == "true" and meta["ensureEvenDistributionOfPartitions"] == "false"
    )


def test_an_existing_kafka_is_reached_at_the_addresses_given() -> None:
    manifests = render(
        {
            "observer.keda.enabled": "true",
            "kafka.enabled": "false",
            # --set splits at a bare comma
            "kafka.external.bootstrapServers": "k1.kafka:9093\\,k2.kafka:9093",
        }
    )
    assert trigger(manifests)["metadata"]["bootstrapServers"] == "k1.kafka:9093,k2.kafka:9093"


@pytest.mark.parametrize(
    ("mechanism", "sasl"),
    [("SCRAM-SHA-512", "scram_sha512"), ("SCRAM-SHA-256", "scram_sha256"), ("PLAIN", "plaintext")],
)
def test_a_sasl_connection_gets_a_trigger_authentication_from_the_services_credentials(
    mechanism: str, sasl: str
) -> None:
    manifests = render({**SASL, "kafka.clientProperties.sasl\\.mechanism": mechanism})
    scaler = trigger(manifests)
    assert scaler["metadata"]["sasl"] == sasl and scaler["metadata"]["tls"] == "enable"
    (auth,) = by_kind(manifests, "TriggerAuthentication")
    assert errors(auth) == []
    assert scaler["authenticationRef"] == {"name": auth["metadata"]["name"]}
    # The password from the very Secret and key the services read it from, the user as they are given it.
    env = observer_env(manifests)
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", **env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]}
    ]
    (ref,) = auth["spec"]["configMapTargetRef"]
    assert ref["parameter"] == "username"
    (configmap,) = [m for m in by_kind(manifests, "ConfigMap") if m["metadata"]["name"] == ref["name"]]
    assert (
        configmap["data"][ref["key"]]
        == json.loads(env["KAFKA_PROPERTIES"]["value"])["sasl.username"]
        == "observer"
    )


def test_tls_without_sasl_needs_no_trigger_authentication() -> None:
    manifests = render({"observer.keda.enabled": "true", "kafka.clientProperties.security\\.protocol": "SSL"})
    meta = trigger(manifests)["metadata"]
    assert meta["tls"] == "enable" and "sasl" not in meta
    assert not by_kind(manifests, "TriggerAuthentication")


def test_an_own_trigger_authentication_replaces_the_charts() -> None:
    manifests = render(
        {
            **SASL,
            "kafka.clientProperties.sasl\\.mechanism": "OAUTHBEARER",
            "observer.keda.authenticationRef": "mine",
        }
    )
    scaler = trigger(manifests)
    assert scaler["authenticationRef"] == {"name": "mine"}
    assert "tls" not in scaler["metadata"] and "sasl" not in scaler["metadata"], "those come from it too"
    assert not by_kind(manifests, "TriggerAuthentication")
    assert not [
        m for m in by_kind(manifests, "ConfigMap") if m["metadata"]["name"].endswith("-observer-keda")
    ]


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"observer.autoscaling.enabled": "true"}, "observer.keda.enabled and observer.autoscaling.enabled"),
        ({"observer.replicas": "2"}, "observer.replicas (2) must stay unset"),
        (
            {"observer.keda.maxReplicaCount": "12"},
            "observer.keda.maxReplicaCount (12) cannot exceed the 6 partitions",
        ),
        (
            {"observer.keda.minReplicaCount": "3", "observer.keda.maxReplicaCount": "2"},
            "cannot exceed observer.keda.maxReplicaCount",
        ),
        (
            {"observer.keda.maxReplicaCount": "4"},
            "observer.keda.maxReplicaCount (4) must divide the 6 partitions",
        ),
        (
            {"observer.keda.limitToPartitionsWithLag": "true"},
            "limitToPartitionsWithLag and observer.keda.ensureEven",
        ),
        ({**SASL, "kafka.clientProperties.sasl\\.mechanism": "GSSAPI"}, "cannot wire SASL mechanism GSSAPI"),
        ({**SASL, "kafka.clientProperties.sasl\\.username": ""}, "needs the SASL user"),
        ({**SASL, "kafka.sasl.passwordSecret": ""}, "needs the SASL password in a Secret"),
    ],
)
def test_conflicting_or_unwirable_values_are_refused_with_one_sentence(
    values: dict[str, str], names: str
) -> None:
    line = refusal(values)
    message = line.split("): ", 1)[1]
    assert names in message, line
    assert message.endswith(".") and ". " not in message, f"not one sentence: {message}"


def test_the_schema_refuses_a_stopped_observer_and_unknown_keys() -> None:
    for bad in (
        "observer.keda.minReplicaCount=0",
        "observer.keda.lagThreshold=0",
        "observer.keda.maxReplicas=3",
    ):
        with pytest.raises(RuntimeError, match="values don't meet the specifications of the schema"):
            helm("template", "sw", str(CHART), "--set", bad)


def test_the_crd_validation_has_teeth(rendered: dict[str, list[Manifest]]) -> None:
    """A misspelt field and a non-string trigger value are caught (the API server would prune the first
    and refuse the second)."""
    good = scaled_object(rendered["observer-keda"])
    misspelt = json.loads(json.dumps(good))
    misspelt["spec"]["maxReplicas"] = misspelt["spec"].pop("maxReplicaCount")
    assert any("maxReplicas" in e for e in errors(misspelt))
    numeric = json.loads(json.dumps(good))
    numeric["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 10000
    assert any("lagThreshold" in e for e in errors(numeric))


# --- the HPA alternative: its example scales on the group's lag, not on the passthrough's -----------
def _metric_names(text: str) -> set[str]:
    return set(re.findall(r"\bobserver_[a-z_]+", text))


def test_the_hpa_example_scales_on_the_group_lag_the_observer_exports(
    rendered: dict[str, list[Manifest]],
) -> None:
    group_lag = metrics.CONSUMER_LAG._name
    (hpa,) = by_kind(rendered["observer-scaling"], "HorizontalPodAutoscaler")
    lag_metrics = [m for m in hpa["spec"]["metrics"] if m["type"] != "Resource"]
    assert [m["external"]["metric"]["name"] for m in lag_metrics] == [group_lag]
    # The commented example in values.yaml and the schema's description name it too, and the
    # passthrough's lag (which more observers cannot lower) only as what not to use.
    values = (CHART / "values.yaml").read_text()
    autoscaling = values.split("  autoscaling:\n", 1)[1].split("\n  keda:\n", 1)[0]
    assert f"metric: {{name: {group_lag}}}" in autoscaling
    assert "metric: {name: observer_lag_offsets}" not in autoscaling
    assert _metric_names(autoscaling) <= {group_lag, metrics.LAG_OFFSETS._name}


def test_notes_name_the_scaled_object(tmp_path: Path) -> None:
    import shutil

    chart = tmp_path / "streamwatch"
    shutil.copytree(CHART, chart)
    (chart / "files" / "notes.txt").write_text((chart / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
        '    {{- tpl (.Files.Get "files/notes.txt") . | nindent 4 }}\n'
    )
    out = helm("template", "sw", str(chart), "-f", str(KEDA[0]), "--show-only", "templates/zz-notes.yaml")
    text = yaml.safe_load(out)["data"]["notes"]
    assert "get scaledobject/sw-streamwatch-observer hpa/keda-hpa-sw-streamwatch-observer" in text
    assert "scale deployment/sw-streamwatch-observer" not in text, "kubectl scale would fight KEDA"
