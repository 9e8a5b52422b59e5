"""kind-config.yaml, skaffold.yaml, k8s/ and the Makefile agree with the chart and the services."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml
from chart.conftest import SERVICES

from streamwatch_dev.chart import render
from streamwatch_dev.process import REPO_ROOT


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
    claim = store["persistentVolumeClaim"]["claimName"]
    (volume,) = [m for m in manifests if m["kind"] == "PersistentVolume"]
    assert volume["spec"]["claimRef"]["name"] == claim
    assert volume["spec"]["local"]["path"] == mount["containerPath"]


def test_kind_script_creates_the_profiles_directory_before_the_cluster() -> None:
    """Created by kind.sh, ./profiles belongs to the developer; created by docker it would be root's."""
    text = (REPO_ROOT / "k8s" / "kind.sh").read_text()
    create = text[text.index("create_cluster() {") : text.index("build_images() {")]
    assert create.index("mkdir -p profiles") < create.index("kind create cluster")
    assert "chmod a+rwx" not in text, "no world-writable directory needed: the kubelet applies fsGroup"


def test_skaffold_builds_every_service_and_deploys_operator_then_chart() -> None:
    skaffold = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a["docker"] for a in skaffold["build"]["artifacts"]}
    assert artifacts == {
        f"streamwatch-{s}": {"dockerfile": "services/Dockerfile", "buildArgs": {"SERVICE": s}}
        for s in SERVICES
    }
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


def _kind_tags(root: Path) -> dict[str, str]:
    result = subprocess.run(
        ["bash", str(root / "k8s" / "kind.sh"), "tags"], capture_output=True, text=True, check=True
    )
    refs = [line.split(":") for line in result.stdout.split()]
    return {name.removeprefix("streamwatch-"): tag for name, tag in refs}


def test_make_images_tags_each_image_by_its_build_inputs(tmp_path: Path) -> None:
    """`make images` used to reload one fixed tag under IfNotPresent, so pods kept the old code. Each image
    is now tagged by a hash of what the Dockerfile copies for it: changed code gets a new tag (and a rollout),
    unchanged services keep theirs."""
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "k8s", tmp_path / "k8s")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")
    shutil.copytree(REPO_ROOT / "services", tmp_path / "services", ignore=ignore)
    before = _kind_tags(tmp_path)
    assert set(before) == set(SERVICES)
    assert all(re.fullmatch(r"[0-9a-f]{12}", tag) for tag in before.values()), before
    assert len(set(before.values())) == len(SERVICES), "each service has its own inputs"
    assert _kind_tags(tmp_path) == before, "the tag is a pure function of the files"

    # Not build inputs: a service's README, bytecode caches.
    (tmp_path / "services" / "observer" / "README.md").write_text("changed\n")
    cache = tmp_path / "services" / "observer" / "src" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "x.cpython-311.pyc").write_bytes(b"\0")
    assert _kind_tags(tmp_path) == before

    # The service's own code: only its tag changes.
    source = next((tmp_path / "services" / "observer" / "src").rglob("*.py"))
    source.write_text(source.read_text() + "\n# changed\n")
    after_observer = _kind_tags(tmp_path)
    changed = {s for s in SERVICES if after_observer[s] != before[s]}
    assert changed == {"observer"}

    # The Dockerfile (one for every service), the shared library and the lock file: every image.
    dockerfile = tmp_path / "services" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\n# changed\n")
    after_dockerfile = _kind_tags(tmp_path)
    assert all(after_dockerfile[s] != after_observer[s] for s in SERVICES)
    common = next((tmp_path / "services" / "common" / "src").rglob("*.py"))
    common.write_text(common.read_text() + "\n# changed\n")
    after_common = _kind_tags(tmp_path)
    assert all(after_common[s] != after_dockerfile[s] for s in SERVICES)
    (tmp_path / "uv.lock").write_text((tmp_path / "uv.lock").read_text() + "\n")
    assert all(tag != after_common[s] for s, tag in _kind_tags(tmp_path).items())


def test_make_images_rolls_the_release_onto_the_content_tags() -> None:
    text = (REPO_ROOT / "k8s" / "kind.sh").read_text()
    assert "image.tag=" not in text, "one fixed tag for every image is what kept pods on old code"
    images = re.search(r"^  images\)\n(.*?);;", text, re.M | re.S)
    assert images is not None
    assert images.group(1).split() == ["check_prerequisites", "build_images", "roll_release"]
    roll = text[text.index("roll_release() {") :]
    assert "--reset-then-reuse-values" in roll and '"${IMAGE_VALUES[@]}"' in roll
    install = text[text.index("install_all() {") : text.index("wait_ready() {")]
    assert '"${IMAGE_VALUES[@]}"' in install, "make up installs the same content tags"
    assert 'image.overrides.$svc=$(image_ref "$svc")' in text
    # the chart gives every container of a service the overridden reference
    manifests = render({f"image.overrides.{s}": f"streamwatch-{s}:0123456789ab" for s in SERVICES})
    for manifest in manifests:
        if (
            manifest["kind"] == "Deployment"
            and manifest["metadata"]["labels"]["app.kubernetes.io/component"] in SERVICES
        ):
            component = manifest["metadata"]["labels"]["app.kubernetes.io/component"]
            for c in manifest["spec"]["template"]["spec"]["containers"]:
                assert c["image"] == f"streamwatch-{component}:0123456789ab"
