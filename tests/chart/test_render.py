"""helm lint, helm template and strict schema validation of every values variant."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from chart.conftest import VARIANTS

from harness.chart import CHART, helm
from harness.services import VENV_BIN

STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic"}


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
    # Only the Strimzi custom resources may be unknown to the validator.
    for line in output.splitlines():
        if line.startswith("WARN"):
            assert any(
                f"kind {kind} with api version kafka.strimzi.io/v1" in line for kind in STRIMZI_KINDS
            ), line
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


def test_notes_render_ready_to_run_commands(tmp_path: Path) -> None:
    """NOTES.txt renders (helm template skips it) and prints the commands users need."""
    import shutil

    chart = tmp_path / "streamwatch"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "files" / "notes.txt").write_text(notes)
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
        '    {{- tpl (.Files.Get "files/notes.txt") . | nindent 4 }}\n'
    )
    rendered = yaml.safe_load(helm("template", "sw", str(chart), "--show-only", "templates/zz-notes.yaml"))
    text = rendered["data"]["notes"]
    for expected in (
        "port-forward svc/sw-streamwatch-grafana 3000:3000",
        "get secret sw-streamwatch-grafana -o jsonpath='{.data.admin-password}'",
        "logs deploy/sw-streamwatch-visits-writer",
        "scale deployment/sw-streamwatch-observer --replicas=3",
        "keeps the scaled count",
        "--set visitsWriter.settings.simulated_latency_seconds=15",
        "helm -n default test sw",
        "ReadWriteMany",
    ):
        assert expected in text, f"{expected!r} missing from NOTES:\n{text}"
