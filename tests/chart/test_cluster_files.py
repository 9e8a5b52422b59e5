"""kind-config.yaml, skaffold.yaml, k8s/ and the Makefile agree with the chart and the services."""

from __future__ import annotations

import re
import subprocess

import yaml
from chart.conftest import SERVICES

from harness.chart import render
from harness.process import REPO_ROOT


def test_kind_port_mappings_reach_the_node_ports_of_the_kind_values() -> None:
    kind = yaml.safe_load((REPO_ROOT / "kind-config.yaml").read_text())
    (node,) = [n for n in kind["nodes"] if n["role"] == "control-plane"]
    assert re.fullmatch(r"kindest/node:v1\.(3[0-9])\.\d+", node["image"]), "pinned node image >= 1.30"
    mapped = {m["containerPort"]: m["hostPort"] for m in node["extraPortMappings"]}
    manifests = render(values_files=[REPO_ROOT / "k8s" / "streamwatch-kind-values.yaml"])
    node_ports = {
        s["metadata"]["name"]: s["spec"]["ports"][0].get("nodePort")
        for s in manifests
        if s["kind"] == "Service" and s["spec"].get("type") == "NodePort"
    }
    assert node_ports == {"sw-streamwatch-grafana": 30300, "sw-streamwatch-profile-publisher": 30800}
    assert mapped == {30300: 3000, 30800: 8000}
    # the profile store is the node directory kind mounts from ./profiles
    (mount,) = node["extraMounts"]
    assert mount["hostPath"] == "./profiles"
    publisher = next(
        m
        for m in manifests
        if m["metadata"]["name"] == "sw-streamwatch-profile-publisher" and m["kind"] == "Deployment"
    )
    store = next(v for v in publisher["spec"]["template"]["spec"]["volumes"] if v["name"] == "store")
    assert store["hostPath"]["path"] == mount["containerPath"]


def test_skaffold_builds_every_service_and_deploys_operator_then_chart() -> None:
    skaffold = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a["docker"]["dockerfile"] for a in skaffold["build"]["artifacts"]}
    assert artifacts == {f"streamwatch-{s}": f"services/{s}/Dockerfile" for s in SERVICES}
    assert all(a["context"] == "." for a in skaffold["build"]["artifacts"]), "built from the repo root"
    strimzi, ours = skaffold["deploy"]["helm"]["releases"]
    assert strimzi["remoteChart"] == "oci://quay.io/strimzi-helm/strimzi-kafka-operator"
    assert strimzi["version"] == "1.2.0" and strimzi["wait"] is True
    assert ours["chartPath"] == "charts/streamwatch"
    overrides = ours["setValueTemplates"]
    assert set(overrides) == {f"image.overrides.{s}" for s in SERVICES}
    for service in SERVICES:
        assert overrides[f"image.overrides.{service}"] == (
            "{{.IMAGE_FULLY_QUALIFIED_streamwatch_" + service.replace("-", "_") + "}}"
        )
    # the override value really replaces the image in the chart
    manifests = render({"image.overrides.observer": "localhost/streamwatch-observer:abc123"})
    images = {
        c["image"]
        for m in manifests
        if m["kind"] == "Deployment" and m["metadata"]["name"].endswith("-observer")
        for c in m["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"localhost/streamwatch-observer:abc123"}


def test_kind_script_is_valid_bash_and_knows_every_service() -> None:
    script = REPO_ROOT / "k8s" / "kind.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    text = script.read_text()
    (services,) = re.findall(r"^SERVICES=\(([^)]*)\)", text, re.M)
    assert services.split() == list(SERVICES)
    assert "STRIMZI_VERSION=1.2.0" in text
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target, command in (("up", "up"), ("down", "down"), ("images", "images"), ("e2e-kind", "e2e")):
        assert re.search(rf"^{target}:.*\n\t@bash k8s/kind.sh {command}$", makefile, re.M), target


def test_strimzi_values_watch_only_their_namespace() -> None:
    values = yaml.safe_load((REPO_ROOT / "k8s" / "strimzi-values.yaml").read_text())
    assert values["watchAnyNamespace"] is False
    namespace = yaml.safe_load((REPO_ROOT / "k8s" / "namespace.yaml").read_text())
    assert namespace["metadata"]["name"] == "streamwatch"
