"""Policy over the rendered manifests of every values variant: probes, resources, security context,
pinned images, standard labels, stable selectors, no plaintext secrets, least-privilege service accounts."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import yaml
from chart.conftest import VARIANTS

from streamwatch_dev.chart import render
from streamwatch_dev.workloads import by_kind, containers, pod_spec

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
    # Init containers and hook pods (`helm test`, the post-delete clean-up) run to completion: Kubernetes
    # has no probes for them.
    long_running = [c for c in containers(rendered[variant]) if not c.init and not c.hook]
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
    if kind == "ServiceMonitor":
        return [spec["selector"]["matchLabels"]]
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
    first = {s["metadata"]["name"]: s["data"] for s in render(fresh=True) if s["kind"] == "Secret"}
    second = {s["metadata"]["name"]: s["data"] for s in render(fresh=True) if s["kind"] == "Secret"}
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
    from streamwatch_dev.chart import CHART

    templates = [p for p in (CHART / "templates").rglob("secret.yaml")]
    assert len(templates) == 3
    for path in templates:
        text = path.read_text()
        assert "randAlphaNum" not in text and "streamwatch.stableSecretValue" in text, path
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret"' in helpers


@variants
def test_no_pod_gets_kubernetes_api_access(variant: str, rendered: dict[str, list[Manifest]]) -> None:
    """Least privilege: every service account without a token (Prometheus discovers the replicas through
    DNS). The one exception is the post-delete hook that removes the kept `helm test` pod: its Role may
    delete that one pod and nothing else, and Helm deletes all of it once it has run."""
    manifests = rendered[variant]
    cleanup = "sw-streamwatch-test-cleanup"
    for m in manifests:
        spec = pod_spec(m)
        if spec is not None and m["metadata"]["name"] != cleanup:
            assert spec.get("automountServiceAccountToken") is False, f"{m['kind']}/{m['metadata']['name']}"
    for account in by_kind(manifests, "ServiceAccount"):
        assert account.get("automountServiceAccountToken") is False, account["metadata"]["name"]
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        assert not by_kind(manifests, kind)
    rbac = by_kind(manifests, "Role") + by_kind(manifests, "RoleBinding")
    if not any(m["metadata"]["name"] == "sw-streamwatch-test" for m in manifests):
        assert not rbac  # tests.enabled=false: no test pod, nothing to clean up
        return
    assert {m["metadata"]["name"] for m in rbac} == {cleanup}
    for m in rbac:
        assert m["metadata"]["annotations"]["helm.sh/hook"] == "post-delete"
        assert "hook-succeeded" in m["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    (role,) = by_kind(manifests, "Role")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "resourceNames": ["sw-streamwatch-test"],
            "verbs": ["delete"],
        }
    ]
    (binding,) = by_kind(manifests, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": cleanup, "namespace": "default"}]


def test_default_stack_shape(default_manifests: list[Manifest]) -> None:
    """The deployment shape the issue asks for: Recreate single writers, scalable observer with PDB,
    Strimzi KRaft Kafka with both topics at 6 partitions, read-only checkpoint in the observer."""
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
        "visits": 6,
        "processed_visits": 6,
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


# --- scaling: kubectl scale survives helm upgrade, drains are not blocked, partitions spread the work ---
def _deployment(manifests: list[Manifest], component: str) -> Manifest:
    (deployment,) = [
        m
        for m in by_kind(manifests, "Deployment")
        if m["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return deployment


@variants
def test_scalable_deployments_leave_replicas_to_kubectl_scale(
    variant: str, rendered: dict[str, list[Manifest]]
) -> None:
    """A rendered `replicas:` is re-applied by Helm's three-way merge on every upgrade (also with
    --reuse-values), undoing `kubectl scale`: unless the user sets it, it is not rendered at all."""
    for component in ("observer", "generator"):
        assert "replicas" not in _deployment(rendered[variant], component)["spec"], (variant, component)


def test_replicas_are_rendered_only_when_set_and_never_beside_the_hpa() -> None:
    for replicas in (0, 3):
        manifests = render({"observer.replicas": replicas, "generator.replicas": replicas})
        assert _deployment(manifests, "observer")["spec"]["replicas"] == replicas
        assert _deployment(manifests, "generator")["spec"]["replicas"] == replicas
    with_hpa = render({"observer.replicas": 3, "observer.autoscaling.enabled": "true"})
    assert by_kind(with_hpa, "HorizontalPodAutoscaler")
    assert "replicas" not in _deployment(with_hpa, "observer")["spec"], "the HPA owns the replica count"
    # Single writers stay pinned at one replica: a second pod would share their checkpoint.
    defaults = render()
    for component in ("visits-writer", "passthrough", "profile-publisher"):
        assert _deployment(defaults, component)["spec"]["replicas"] == 1, component


def test_replicas_schema_accepts_null_and_integers_only() -> None:
    from streamwatch_dev.chart import CHART, helm

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["observer"]["replicas"] is None and values["generator"]["replicas"] is None
    for bad in ("observer.replicas=two", "observer.replicas=-1", "generator.replicas=1.5"):
        with pytest.raises(RuntimeError, match="values don't meet the specifications of the schema"):
            helm("template", "sw", str(CHART), "--set", bad)


@variants
def test_observer_pdb_never_blocks_a_drain(variant: str, rendered: dict[str, list[Manifest]]) -> None:
    """minAvailable: 1 at one replica leaves zero allowed disruptions: `kubectl drain` hangs."""
    for pdb in by_kind(rendered[variant], "PodDisruptionBudget"):
        assert "minAvailable" not in pdb["spec"], pdb["metadata"]["name"]
        assert pdb["spec"]["maxUnavailable"] == 1, pdb["metadata"]["name"]


def test_pdb_schema_refuses_a_budget_that_blocks_drains() -> None:
    from streamwatch_dev.chart import CHART, helm

    for bad in (
        "observer.podDisruptionBudget.maxUnavailable=0",
        "observer.podDisruptionBudget.minAvailable=1",
    ):
        with pytest.raises(RuntimeError, match="values don't meet the specifications of the schema"):
            helm("template", "sw", str(CHART), "--set", bad)
    (pdb,) = by_kind(render({"observer.podDisruptionBudget.maxUnavailable": "50%"}), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == "50%"


@variants
def test_topic_partitions_spread_three_observer_replicas_evenly(
    variant: str, rendered: dict[str, list[Manifest]]
) -> None:
    topics = {
        t["spec"]["topicName"]: t["spec"]["partitions"] for t in by_kind(rendered[variant], "KafkaTopic")
    }
    if not topics:  # an existing Kafka cluster: its topics are not ours
        return
    assert len(set(topics.values())) == 1, f"both topics need one partition count: {topics}"
    (partitions,) = set(topics.values())
    for replicas in (1, 2, 3):
        assert partitions % replicas == 0, f"{partitions} partitions do not spread over {replicas} replicas"
    for hpa in by_kind(rendered[variant], "HorizontalPodAutoscaler"):
        assert hpa["spec"]["maxReplicas"] <= partitions, "replicas beyond the partition count idle"


def test_unequal_topic_partitions_are_refused() -> None:
    with pytest.raises(RuntimeError, match="must be equal"):
        render({"kafka.topics.visits.partitions": 12})
    with pytest.raises(RuntimeError, match="must be equal"):
        render({"kafka.topics.processedVisits.partitions": 3})
    topics = by_kind(
        render({"kafka.topics.visits.partitions": 12, "kafka.topics.processedVisits.partitions": 12}),
        "KafkaTopic",
    )
    assert {t["spec"]["partitions"] for t in topics} == {12}


# --- the profile store on kind: writable by the non-root publisher whoever created the directory ------
@variants
def test_no_hostpath_volume_anywhere(variant: str, rendered: dict[str, list[Manifest]]) -> None:
    """A hostPath volume keeps the node directory's owner and mode: kind creates a missing ./profiles as
    root on Linux and the publisher (uid 10001) could not write. Node directories are `local` volumes."""
    for m in rendered[variant]:
        spec = pod_spec(m)
        for volume in (spec or {}).get("volumes", []):
            assert "hostPath" not in volume, f"{m['kind']}/{m['metadata']['name']}: {volume}"


def test_kind_profile_store_is_a_local_volume_the_kubelet_gives_to_the_fsgroup(
    rendered: dict[str, list[Manifest]],
) -> None:
    from streamwatch_dev.process import REPO_ROOT

    manifests = rendered["kind"]
    kind_values = yaml.safe_load((REPO_ROOT / "k8s" / "streamwatch-kind-values.yaml").read_text())
    node_dir = kind_values["profilePublisher"]["storage"]["hostPath"]
    (pv,) = by_kind(manifests, "PersistentVolume")
    assert pv["spec"]["local"] == {"path": node_dir}
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}
    ]
    assert pv["spec"]["claimRef"] == {"namespace": "default", "name": "sw-streamwatch-profile-publisher"}
    assert pv["spec"]["storageClassName"] == "" and pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    claims = {c["metadata"]["name"]: c for c in by_kind(manifests, "PersistentVolumeClaim")}
    claim = claims["sw-streamwatch-profile-publisher"]
    assert claim["spec"]["volumeName"] == pv["metadata"]["name"] and claim["spec"]["storageClassName"] == ""
    publisher = next(
        m
        for m in by_kind(manifests, "Deployment")
        if m["metadata"]["name"] == "sw-streamwatch-profile-publisher"
    )
    pod = publisher["spec"]["template"]["spec"]
    store = next(v for v in pod["volumes"] if v["name"] == "store")
    assert store == {
        "name": "store",
        "persistentVolumeClaim": {"claimName": "sw-streamwatch-profile-publisher"},
    }
    # the group the kubelet gives the volume to is the one the publisher runs with
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"] == 10001
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "chown" not in yaml.safe_dump(pod), "no root init container fixing ownership"
    # Without hostPath: a provisioned claim kept across uninstalls, and no PersistentVolume of ours.
    assert not by_kind(rendered["default"], "PersistentVolume")


def test_a_node_directory_needs_the_labels_of_its_node() -> None:
    with pytest.raises(RuntimeError, match="hostPathNodeLabels is required"):
        render({"profilePublisher.storage.hostPath": "/srv/profiles"})
    (pv,) = by_kind(
        render(
            {
                "profilePublisher.storage.hostPath": "/srv/profiles",
                "profilePublisher.storage.hostPathNodeLabels.kubernetes\\.io/hostname": "node-1",
            }
        ),
        "PersistentVolume",
    )
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}
    ]
