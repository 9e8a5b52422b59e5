"""Every workload's pods take nodeSelector, tolerations, affinity and resources from one helper: the
component's own values over the chart-wide podDefaults (ci/placement-values.yaml sets both)."""

from __future__ import annotations

from typing import Any

import yaml
from chart.conftest import VARIANTS

from streamwatch_dev.chart import CHART
from streamwatch_dev.workloads import Manifest, containers, pod_spec

PLACEMENT = yaml.safe_load((CHART / "ci" / "placement-values.yaml").read_text())
DEFAULTS: dict[str, Any] = PLACEMENT["podDefaults"]


def _workloads(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if pod_spec(m) is not None]


def test_every_workload_gets_the_defaults_or_its_own_placement(
    rendered: dict[str, list[Manifest]],
) -> None:
    workloads = _workloads(rendered["placement"])
    components = {m["metadata"]["labels"].get("app.kubernetes.io/component") for m in workloads}
    assert {"observer", "prometheus", "generator", "elasticsearch", "grafana"} <= components
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec is not None
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        component = workload["metadata"]["labels"].get("app.kubernetes.io/component")
        if component == "observer":
            assert spec["nodeSelector"] == {"workload": "streaming", "disk": "ssd"}, where
            assert spec["affinity"] == PLACEMENT["observer"]["affinity"], where
        else:
            assert spec["nodeSelector"] == DEFAULTS["nodeSelector"], where
            assert spec["affinity"] == DEFAULTS["affinity"], where
        if component == "prometheus":
            assert spec["tolerations"] == PLACEMENT["prometheus"]["tolerations"], where
        else:
            assert spec["tolerations"] == DEFAULTS["tolerations"], where


def test_every_container_merges_the_default_resources_under_its_own(
    rendered: dict[str, list[Manifest]],
) -> None:
    default_by_where = {c.where: c.spec["resources"] for c in containers(rendered["default"])}
    placed = list(containers(rendered["placement"]))
    assert placed
    for c in placed:
        resources = c.spec["resources"]
        assert resources["limits"]["ephemeral-storage"] == "2Gi", c.where
        if c.component == "prometheus" and not c.init:
            assert resources["requests"] == {"cpu": "100m", "memory": "512Mi"}, c.where
            assert resources["limits"]["memory"] == "1Gi", c.where
        else:
            # The container's own cpu and memory stay as the defaults render them.
            own = default_by_where[c.where]
            assert resources["requests"] == own["requests"], c.where
            assert {k: v for k, v in resources["limits"].items() if k != "ephemeral-storage"} == (
                own["limits"]
            ), c.where


def test_the_defaults_render_no_placement(rendered: dict[str, list[Manifest]]) -> None:
    """Unset, the pods schedule anywhere: no empty nodeSelector, tolerations or affinity keys."""
    assert "placement" in VARIANTS
    for workload in _workloads(rendered["default"]):
        spec = pod_spec(workload)
        assert spec is not None
        assert not {"nodeSelector", "tolerations", "affinity"} & set(spec), workload["metadata"]["name"]
