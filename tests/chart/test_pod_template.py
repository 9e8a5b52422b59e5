"""Pod labels, annotations, topology spread and ServiceAccount annotations: chart-wide podDefaults with each
component's own over them (ci/pod-template-values.yaml sets both), and the chart's own keys kept."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from chart.conftest import VARIANTS

from streamwatch_dev.chart import CHART, helm, render
from streamwatch_dev.workloads import Manifest, by_kind, pod_spec

VALUES = yaml.safe_load((CHART / "ci" / "pod-template-values.yaml").read_text())
DEFAULTS: dict[str, Any] = VALUES["podDefaults"]
SELECTOR_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}


def _pods(manifests: list[Manifest]) -> list[tuple[Manifest, dict[str, Any], dict[str, Any]]]:
    """(manifest, pod metadata, pod spec) of every pod the chart renders, test and hook pods included."""
    found = []
    for m in manifests:
        spec = pod_spec(m)
        if spec is not None:
            metadata = m["metadata"] if m["kind"] == "Pod" else m["spec"]["template"]["metadata"]
            found.append((m, metadata, spec))
    return found


def _component(m: Manifest) -> str:
    return str(m["metadata"]["labels"]["app.kubernetes.io/component"])


def test_the_variant_is_rendered_by_every_variant_test() -> None:
    assert "pod-template" in VARIANTS


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_pod_gets_service_links(variant: str, rendered: dict[str, list[Manifest]]) -> None:
    """Kubernetes would put <SERVICE>_PORT_... variables of every Service of the namespace into each
    container; one named like a settings prefix (OBSERVER_..., PASSTHROUGH_...) would stop the service."""
    pods = _pods(rendered[variant])
    assert len([p for p in pods if p[0]["kind"] == "Pod"]) == 2 or variant == "minimal", "helm test pods"
    for m, _metadata, spec in pods:
        assert spec.get("enableServiceLinks") is False, f"{m['kind']}/{m['metadata']['name']}"


def test_the_defaults_render_no_extra_metadata_spread_or_identity(
    rendered: dict[str, list[Manifest]],
) -> None:
    manifests = rendered["default"]
    for m, metadata, spec in _pods(manifests):
        where = f"{m['kind']}/{m['metadata']['name']}"
        assert set(metadata["labels"]) == set(m["metadata"]["labels"]), where
        assert "topologySpreadConstraints" not in spec, where
    for account in by_kind(manifests, "ServiceAccount"):
        assert not {k for k in account["metadata"].get("annotations", {}) if not k.startswith("helm.sh/")}


def test_every_pod_takes_the_default_labels_and_annotations_and_the_component_its_own_over_them(
    rendered: dict[str, list[Manifest]],
) -> None:
    pods = _pods(rendered["pod-template"])
    assert {"observer", "generator", "prometheus", "grafana", "test", "test-cleanup"} <= {
        _component(m) for m, _, _ in pods
    }
    for m, metadata, _spec in pods:
        where = f"{m['kind']}/{m['metadata']['name']}"
        labels, annotations = metadata["labels"], metadata.get("annotations", {})
        if _component(m) == "observer":
            assert labels["team"] == "observability", where  # the component's key wins
            assert annotations["example.com/owner"] == "observer-oncall", where
        else:
            assert labels["team"] == "data", where
            assert "example.com/owner" not in annotations, where
        assert labels["cost-center"] == "streaming", where
        assert annotations["sidecar.istio.io/inject"] == "false", where
        # The chart's own labels and annotations stay: selectors, scrape ports, checksums, hooks.
        assert {k: labels[k] for k in SELECTOR_KEYS} == {
            k: v for k, v in m["metadata"]["labels"].items() if k in SELECTOR_KEYS
        }, where
        if m["kind"] != "Pod" and _component(m) in {"observer", "generator", "profile-publisher"}:
            assert annotations["prometheus.io/scrape"] == "true", where
        if m["kind"] == "Pod":
            assert annotations["helm.sh/hook"] in {"test", "post-delete"}, where


def test_spread_constraints_default_to_the_components_own_pods(rendered: dict[str, list[Manifest]]) -> None:
    for m, _metadata, spec in _pods(rendered["pod-template"]):
        where = f"{m['kind']}/{m['metadata']['name']}"
        (constraint,) = spec["topologySpreadConstraints"]
        if _component(m) == "observer":  # its own list replaces the default, its labelSelector kept
            assert constraint == VALUES["observer"]["topologySpreadConstraints"][0], where
            continue
        selector = m["spec"]["selector"]["matchLabels"] if m["kind"] != "Pod" else None
        wanted = {**DEFAULTS["topologySpreadConstraints"][0]}
        own = constraint.pop("labelSelector")
        assert constraint == wanted, where
        if selector is not None:
            assert own == {"matchLabels": selector}, where  # exactly the pods this workload selects
        else:
            assert own["matchLabels"]["app.kubernetes.io/component"] == _component(m), where


def test_service_account_annotations_merge_the_components_over_the_defaults(
    rendered: dict[str, list[Manifest]],
) -> None:
    accounts = {
        _component(a): a["metadata"].get("annotations", {})
        for a in by_kind(rendered["pod-template"], "ServiceAccount")
        if "helm.sh/hook" not in a["metadata"].get("annotations", {})
    }
    assert {"generator", "visits-writer", "passthrough", "observer", "profile-publisher"} <= set(accounts)
    for component, given in accounts.items():
        if component == "observer":
            assert given == VALUES["observer"]["serviceAccount"]["annotations"]
        else:
            assert given == DEFAULTS["serviceAccount"]["annotations"], component
    # Every pod runs as its component's account: the identity annotated is the one it acts as.
    for m, _metadata, spec in _pods(rendered["pod-template"]):
        if m["kind"] != "Pod":
            assert spec["serviceAccountName"].endswith(f"-{_component(m)}")


@pytest.mark.parametrize(
    ("flag", "value", "where", "key"),
    [
        ("--set", "observer.podLabels.app\\.kubernetes\\.io/component=generator", "observer.podLabels",
         "app.kubernetes.io/component"),
        ("--set", "podDefaults.podLabels.app\\.kubernetes\\.io/instance=other", "podDefaults.podLabels",
         "app.kubernetes.io/instance"),
        ("--set", "grafana.podLabels.helm\\.sh/chart=x", "grafana.podLabels", "helm.sh/chart"),
        ("--set-string", "observer.podAnnotations.prometheus\\.io/port=9999", "observer.podAnnotations",
         "prometheus.io/port"),
        ("--set", "podDefaults.podAnnotations.helm\\.sh/hook=pre-install", "podDefaults.podAnnotations",
         "helm.sh/hook"),
    ],
)  # fmt: skip
def test_a_key_the_chart_sets_itself_is_refused_naming_it(
    flag: str, value: str, where: str, key: str
) -> None:
    """A pod label the selectors match on (or an annotation the chart relies on) cannot be overridden:
    the render stops naming the value and the key, instead of making a Deployment whose selector misses
    its pods, or pods another component's Service selects."""
    with pytest.raises(RuntimeError) as failed:
        helm("template", "sw", str(CHART), flag, value)
    assert f'{where}: "{key}" is set by the chart itself' in str(failed.value), failed.value


@pytest.mark.parametrize(
    "bad",
    [
        "observer.podLabels.team=1",  # a number: labels are strings
        "podDefaults.topologySpreadConstraints[0].maxSkew=1",  # no topologyKey, whenUnsatisfiable
        "observer.serviceAccount.name=other",  # the account's name is the chart's
    ],
)
def test_the_schema_refuses_malformed_pod_template_values(bad: str) -> None:
    with pytest.raises(RuntimeError, match="values don't meet the specifications of the schema"):
        helm("template", "sw", str(CHART), "--set", bad)


def test_a_component_without_values_of_its_own_keeps_the_defaults_only() -> None:
    manifests = render({"podDefaults.podLabels.team": "data", "generator.podLabels.shard": "a"})
    labels = {_component(m): metadata["labels"] for m, metadata, _ in _pods(manifests) if m["kind"] != "Pod"}
    assert labels["generator"]["shard"] == "a" and labels["generator"]["team"] == "data"
    assert "shard" not in labels["observer"] and labels["observer"]["team"] == "data"
