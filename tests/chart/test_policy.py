"""Policy over the rendered manifests of every values variant: probes, resources, security context,
pinned images, standard labels, stable selectors, no plaintext secrets, least-privilege service accounts."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import yaml
from chart.conftest import VARIANTS
from chart.workloads import by_kind, containers, pod_spec

from harness.chart import render

Manifest = dict[str, Any]
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/component",
    "helm.sh/chart",
)
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|CREDENTIAL", re.IGNORECASE)

variants = pytest.mark.parametrize("variant", sorted(VARIANTS))


@variants
def test_every_container_has_resources_and_a_locked_down_security_context(
    variant: str, rendered: dict[str, list[Manifest]]
) -> None:
    found = list(containers(rendered[variant]))
    assert found, "no containers rendered"
    for c in found:
        resources = c.spec.get("resources", {})
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{c.where}: {part} missing"
        sc = c.spec.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, c.where
        assert sc.get("readOnlyRootFilesystem") is True, c.where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], c.where
        assert "add" not in sc.get("capabilities", {}), c.where
        assert sc.get("privileged") is not True, c.where
        pod_sc = c.pod_spec.get("securityContext", {})
        assert sc.get("runAsNonRoot") is True or pod_sc.get("runAsNonRoot") is True, c.where
        assert pod_sc.get("runAsUser", 0) != 0 and sc.get("runAsUser", 1) != 0, c.where
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", c.where
        assert not c.pod_spec.get("hostNetwork") and not c.pod_spec.get("hostPID"), c.where


@variants
def test_every_long_running_container_has_probes(variant: str, rendered: dict[str, list[Manifest]]) -> None:
    # Init containers and the `helm test` pod run to completion: Kubernetes has no probes for them.
    long_running = [c for c in containers(rendered[variant]) if not c.init and not c.is_test_hook]
    assert long_running
    for c in long_running:
        for probe in ("livenessProbe", "readinessProbe"):
            assert probe in c.spec, f"{c.where}: no {probe}"


@variants
def test_every_image_is_pinned(variant: str, rendered: dict[str, list[Manifest]]) -> None:
    for c in containers(rendered[variant]):
        image = c.spec["image"]
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{c.where}: image {image} has no tag"
        assert tag and tag != "latest", f"{c.where}: image {image} is not pinned"


@variants
def test_standard_labels_and_stable_selectors(variant: str, rendered: dict[str, list[Manifest]]) -> None:
    for m in rendered[variant]:
        labels = m["metadata"].get("labels", {})
        missing = [label for label in STANDARD_LABELS if label not in labels]
        assert not missing, f"{m['kind']}/{m['metadata']['name']}: labels missing {missing}"
        assert labels["app.kubernetes.io/part-of"] == "streamwatch"
        selectors = _selectors(m)
        for selector in selectors:
            assert "helm.sh/chart" not in selector, f"{m['kind']}/{m['metadata']['name']}: {selector}"
            assert "app.kubernetes.io/version" not in selector, f"{m['kind']}/{m['metadata']['name']}"
        # A workload's selector must match its own pod template.
        spec = pod_spec(m)
        if spec is not None and m["kind"] != "Pod":
            template_labels = m["spec"]["template"]["metadata"]["labels"]
            for key, value in m["spec"]["selector"]["matchLabels"].items():
                assert template_labels.get(key) == value


def _selectors(m: Manifest) -> list[dict[str, str]]:
    spec = m.get("spec", {})
    kind = m["kind"]
    if kind in {"Deployment", "StatefulSet", "PodDisruptionBudget"}:
        return [spec["selector"]["matchLabels"]]
    if kind == "Service":
        return [spec["selector"]]
    if kind == "NetworkPolicy":
        peers = [
            p["podSelector"]["matchLabels"] for rule in spec.get("ingress", []) for p in rule.get("from", [])
        ]
        return [spec["podSelector"]["matchLabels"], *peers]
    return []


@variants
def test_no_plaintext_secret_anywhere(variant: str, rendered: dict[str, list[Manifest]]) -> None:
    manifests = rendered[variant]
    secrets = by_kind(manifests, "Secret")
    secret_values = []
    for s in secrets:
        assert "stringData" not in s, f"Secret {s['metadata']['name']} has plaintext stringData"
        for key, value in s.get("data", {}).items():
            decoded = base64.b64decode(value).decode()
            if SECRET_NAME.search(key):
                assert len(decoded) >= 24, f"{s['metadata']['name']}/{key} is weak"
                assert decoded.lower() not in {"admin", "changeme", "password", "elastic"}
                secret_values.append(decoded)
    text = yaml.safe_dump_all([m for m in manifests if m["kind"] != "Secret"])
    for value in secret_values:
        assert value not in text, "a generated secret appears in plaintext outside its Secret"
    for c in containers(manifests):
        for name, env in c.env().items():
            if SECRET_NAME.search(name) and not name.startswith(("GF_PATHS",)):
                assert "valueFrom" in env and "value" not in env, f"{c.where}: {name} set in plaintext"
    for cm in by_kind(manifests, "ConfigMap"):
        for key, body in cm.get("data", {}).items():
            for line in body.splitlines():
                match = re.search(r"(password|token|secret)\w*\s*[:=]\s*(\S+)", line, re.IGNORECASE)
                if match and not match.group(2).startswith("$"):
                    pytest.fail(f"ConfigMap {cm['metadata']['name']}/{key}: {line.strip()}")


def test_generated_secrets_are_random_per_install() -> None:
    """Offline renders (no cluster to look up) generate a fresh password: never a fixed default."""
    first = {s["metadata"]["name"]: s["data"] for s in render(show_only=None) if s["kind"] == "Secret"}
    second = {s["metadata"]["name"]: s["data"] for s in render(show_only=None) if s["kind"] == "Secret"}
    assert set(first) == {
        "sw-streamwatch-elasticsearch",
        "sw-streamwatch-grafana",
        "sw-streamwatch-profile-publisher",
    }
    assert (
        first["sw-streamwatch-grafana"]["admin-password"]
        != second["sw-streamwatch-grafana"]["admin-password"]
    )
    assert (
        first["sw-streamwatch-elasticsearch"]["password"]
        != second["sw-streamwatch-elasticsearch"]["password"]
    )


def test_secret_templates_reuse_the_existing_value_on_upgrade() -> None:
    """`lookup` keeps passwords stable across upgrades (lookup is empty under helm template, so this
    reads the template: every generated Secret value goes through the lookup helper)."""
    from harness.chart import CHART

    templates = [p for p in (CHART / "templates").rglob("secret.yaml")]
    assert len(templates) == 3
    for path in templates:
        text = path.read_text()
        assert "randAlphaNum" not in text and "streamwatch.stableSecretValue" in text, path
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret"' in helpers


@variants
def test_no_pod_gets_kubernetes_api_access(variant: str, rendered: dict[str, list[Manifest]]) -> None:
    """Least privilege: every service account without a token, no RBAC at all (Prometheus discovers the
    replicas through DNS)."""
    manifests = rendered[variant]
    for m in manifests:
        spec = pod_spec(m)
        if spec is not None:
            assert spec.get("automountServiceAccountToken") is False, f"{m['kind']}/{m['metadata']['name']}"
    for account in by_kind(manifests, "ServiceAccount"):
        assert account.get("automountServiceAccountToken") is False, account["metadata"]["name"]
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        assert not by_kind(manifests, kind)


def test_default_stack_shape(default_manifests: list[Manifest]) -> None:
    """The deployment shape the issue asks for: Recreate single writers, scalable observer with PDB,
    Strimzi KRaft Kafka with both topics at 2 partitions, read-only checkpoint in the observer."""
    by_name = {(m["kind"], m["metadata"]["name"]): m for m in default_manifests}
    for name in ("sw-streamwatch-passthrough", "sw-streamwatch-visits-writer"):
        deployment = by_name[("Deployment", name)]
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
    init = by_name[("Deployment", "sw-streamwatch-visits-writer")]["spec"]["template"]["spec"][
        "initContainers"
    ]
    assert init[0]["command"] == ["streamwatch-visits-writer", "create-tables"]
    observer = by_name[("Deployment", "sw-streamwatch-observer")]
    volumes = {v["name"]: v for v in observer["spec"]["template"]["spec"]["volumes"]}
    assert volumes["checkpoint"]["persistentVolumeClaim"] == {
        "claimName": "sw-streamwatch-passthrough",
        "readOnly": True,
    }
    mounts = observer["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "checkpoint", "mountPath": "/checkpoint", "readOnly": True} in mounts
    assert ("PodDisruptionBudget", "sw-streamwatch-observer") in by_name

    kafka = by_name[("Kafka", "sw-streamwatch-kafka")]
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1"
    assert kafka["spec"]["kafka"]["version"] == "4.3.1"
    assert kafka["spec"]["kafka"]["metadataVersion"] == "4.3-IV0"
    assert "zookeeper" not in kafka["spec"] and "topicOperator" in kafka["spec"]["entityOperator"]
    pool = next(m for m in default_manifests if m["kind"] == "KafkaNodePool")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == "sw-streamwatch-kafka"
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    assert pool["spec"]["storage"] == {"type": "ephemeral"}
    topics = {t["spec"]["topicName"]: t for t in by_kind(default_manifests, "KafkaTopic")}
    assert {name: t["spec"]["partitions"] for name, t in topics.items()} == {
        "visits": 2,
        "processed_visits": 2,
    }
    assert all(
        t["metadata"]["labels"]["strimzi.io/cluster"] == "sw-streamwatch-kafka" for t in topics.values()
    )
    for c in containers(default_manifests):
        env = c.env()
        if "KAFKA_BOOTSTRAP_SERVERS" in env:  # Strimzi names the bootstrap Service <cluster>-kafka-bootstrap
            assert env["KAFKA_BOOTSTRAP_SERVERS"]["value"] == "sw-streamwatch-kafka-kafka-bootstrap:9092"


def test_observer_autoscaling_variant(rendered: dict[str, list[Manifest]]) -> None:
    manifests = rendered["observer-scaling"]
    (hpa,) = by_kind(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "sw-streamwatch-observer"
    observer = next(
        m for m in by_kind(manifests, "Deployment") if m["metadata"]["name"] == "sw-streamwatch-observer"
    )
    assert "replicas" not in observer["spec"], "the HPA owns the replica count"


def test_network_policies_variant(rendered: dict[str, list[Manifest]]) -> None:
    policies = {p["metadata"]["name"]: p for p in by_kind(rendered["network-policy"], "NetworkPolicy")}
    es = policies["sw-streamwatch-elasticsearch"]["spec"]["ingress"][0]["from"]
    allowed = {peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in es}
    assert allowed == {"observer", "profile-publisher", "grafana", "test"}
    assert not by_kind(rendered["default"], "NetworkPolicy")
