"""Volume size changes Kubernetes refuses are refused at render time, with one sentence naming the value,
instead of failing an upgrade halfway (the first kind install: changing `elasticsearch.storage.size`
failed with "updates to statefulset spec for fields other than ... are forbidden").

The chart reads the live objects with `lookup`, which returns nothing under `helm template`. So the
checks are named templates taking the live object (templates/_storage.tpl): here they are called by
helm itself, from a template added to a copy of the chart, with live objects as the API server returns
them; every volume template of the chart is checked to call them with a lookup of its own object; and
a fresh install renders whatever the sizes. The lookup path on a real API server is the kind-cluster
test's.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from streamwatch_dev.chart import CHART, helm, render

STATEFULSET_2GI = {
    "spec": {
        "volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "2Gi"}}}}
        ]
    }
}


def _claim(size: str, storage_class: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"spec": spec}


@pytest.fixture(scope="module")
def chart_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chart = tmp_path_factory.mktemp("chart") / "streamwatch"
    shutil.copytree(CHART, chart)
    return chart


def _call(chart: Path, helper: str, args: dict[str, Any]) -> str | None:
    """Render ``include helper args`` (objects given as YAML, as `lookup` returns them); None when it
    passes, else helm's error message."""
    parts = []
    for key, value in args.items():
        # Objects as JSON in a raw string (JSON has no backquote), the rest as quoted strings.
        given = f"(fromJson `{json.dumps(value)}`)" if isinstance(value, dict) else json.dumps(value)
        parts.append(f'"{key}" {given}')
    call = f'{{{{- include "{helper}" (dict {" ".join(parts)}) }}}}'
    (chart / "templates" / "zz-case.yaml").write_text(
        f"{call}\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: case}}\ndata: {{rendered: ok}}\n"
    )
    try:
        helm("template", "sw", str(chart), "--show-only", "templates/zz-case.yaml")
    except RuntimeError as exc:
        (line,) = [line for line in str(exc).splitlines() if line.startswith("Error:")]
        return line.split("): ", 1)[1] if "): " in line else line
    return None


@pytest.mark.parametrize(
    ("live", "size", "refused"),
    [
        ({}, "5Gi", None),  # first install (or helm template): nothing to compare with
        (STATEFULSET_2GI, "2Gi", None),
        (STATEFULSET_2GI, "2048Mi", None),  # the same size written differently
        (
            STATEFULSET_2GI,
            "5Gi",
            "elasticsearch.storage.size cannot change from 2Gi to 5Gi on an installed release, because "
            "Kubernetes never changes the volume size of an existing StatefulSet: set it back to 2Gi "
            '(README, "Volume sizes", shows how to grow the volume by hand).',
        ),
        ({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "other"}}]}}, "5Gi", None),
    ],
    ids=["no-live-object", "unchanged", "equal-in-other-units", "changed", "other-claim"],
)
def test_a_changed_statefulset_volume_size_is_refused(
    chart_copy: Path, live: dict[str, Any], size: str, refused: str | None
) -> None:
    args = {"live": live, "claim": "data", "size": size, "value": "elasticsearch.storage.size"}
    assert _call(chart_copy, "streamwatch.refuseClaimTemplateResize", args) == refused


EXPANDABLE = {"allowVolumeExpansion": True}
FIXED = {"allowVolumeExpansion": False}


@pytest.mark.parametrize(
    ("live", "size", "storage_class", "refused"),
    [
        ({}, "1Gi", None, None),
        (_claim("2Gi", "standard"), "2Gi", None, None),
        (
            _claim("2Gi", "standard"),
            "1Gi",
            EXPANDABLE,
            "visitsWriter.storage.size cannot shrink from 2Gi to 1Gi, because Kubernetes never shrinks a"
            " volume claim: set it back to 2Gi.",
        ),
        (_claim("2Gi", "standard"), "4Gi", EXPANDABLE, None),
        (
            _claim("2Gi", "standard"),
            "4Gi",
            FIXED,
            "visitsWriter.storage.size cannot grow from 2Gi to 4Gi, because the claim's storage class"
            ' "standard" does not allow volume expansion (allowVolumeExpansion): set it back to 2Gi'
            ' (README, "Volume sizes").',
        ),
        # The class as lookup finds it under helm template: absent, so not known to expand.
        (_claim("2Gi", "standard"), "4Gi", None, "cannot grow from 2Gi to 4Gi"),
        # Bound to a volume made by hand (the profile publisher's hostPath): no class, no growth.
        (_claim("2Gi", ""), "4Gi", EXPANDABLE, 'storage class "" does not allow volume expansion'),
    ],
    ids=["no-live-claim", "unchanged", "shrink", "grow-expandable", "grow-fixed", "grow-class-looked-up",
         "grow-no-class"],
)  # fmt: skip
def test_a_claim_size_kubernetes_would_refuse_is_refused(
    chart_copy: Path,
    live: dict[str, Any],
    size: str,
    storage_class: dict[str, Any] | None,
    refused: str | None,
) -> None:
    args: dict[str, Any] = {"live": live, "size": size, "value": "visitsWriter.storage.size"}
    if storage_class is not None:
        args["storageClass"] = storage_class
    result = _call(chart_copy, "streamwatch.refuseClaimResize", args)
    if refused is None or result is None:
        assert result == refused
    else:
        assert refused in result


@pytest.mark.parametrize(
    ("template", "kind", "component", "helper", "value"),
    [
        ("elasticsearch/statefulset.yaml", '"apps/v1" "StatefulSet"', "$c", "refuseClaimTemplateResize",
         "elasticsearch.storage.size"),
        ("visits-writer/pvc.yaml", '"v1" "PersistentVolumeClaim"', '"visits-writer"', "refuseClaimResize",
         "visitsWriter.storage.size"),
        ("passthrough/pvc.yaml", '"v1" "PersistentVolumeClaim"', '"passthrough"', "refuseClaimResize",
         "passthrough.checkpoint.size"),
        ("profile-publisher/pvc.yaml", '"v1" "PersistentVolumeClaim"', "$name", "refuseClaimResize",
         "profilePublisher.storage.size"),
    ],
)  # fmt: skip
def test_every_volume_is_checked_against_its_live_object(
    template: str, kind: str, component: str, helper: str, value: str
) -> None:
    text = (CHART / "templates" / template).read_text()
    (looked_up,) = re.findall(rf"lookup {re.escape(kind)} \.Release\.Namespace (.+)", text)
    assert component in looked_up, looked_up
    (call,) = re.findall(rf'include "streamwatch\.{helper}" \(dict (.+)', text)
    assert f'"value" "{value}"' in call
    assert "(lookup " in call or '"live" $live' in call, call


def test_a_fresh_install_renders_with_any_sizes() -> None:
    sizes = {
        "elasticsearch.storage.size": "7Gi",
        "visitsWriter.storage.size": "3Gi",
        "passthrough.checkpoint.size": "500Mi",
        "profilePublisher.storage.size": "4Gi",
    }
    manifests = render(sizes)
    (statefulset,) = [m for m in manifests if m["kind"] == "StatefulSet"]
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "7Gi"
    }
    claims = {
        m["metadata"]["name"]: m["spec"]["resources"]["requests"]["storage"]
        for m in manifests
        if m["kind"] == "PersistentVolumeClaim"
    }
    assert claims == {
        "sw-streamwatch-visits-writer": "3Gi",
        "sw-streamwatch-passthrough": "500Mi",
        "sw-streamwatch-profile-publisher": "4Gi",
    }
