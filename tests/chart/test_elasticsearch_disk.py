"""The bundled Elasticsearch's disk watermarks: on by default (Elasticsearch's own default), off on kind,
whose local-path volumes share the host's disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamwatch_dev.chart import render
from streamwatch_dev.process import REPO_ROOT
from streamwatch_dev.workloads import by_kind

SETTING = "cluster.routing.allocation.disk.threshold_enabled"


def _threshold(values_files: list[Path]) -> str:
    (statefulset,) = [
        s
        for s in by_kind(render(values_files=values_files), "StatefulSet")
        if s["metadata"]["name"].endswith("-elasticsearch")
    ]
    (container,) = [
        c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["name"] == "elasticsearch"
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    return str(env[SETTING])


@pytest.mark.parametrize(
    ("values_files", "expected"),
    [
        ([], "true"),
        ([REPO_ROOT / "k8s" / "streamwatch-kind-values.yaml"], "false"),
        ([REPO_ROOT / "k8s" / "offline" / "values.yaml"], "false"),
    ],
    ids=["default", "make up on kind", "test cluster"],
)
def test_disk_watermarks_are_elasticsearchs_by_default_and_off_on_kind(
    values_files: list[Path], expected: str
) -> None:
    assert _threshold(values_files) == expected
