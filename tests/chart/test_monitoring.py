"""The kube-prometheus-stack options (monitoring.*): off by default; with them on, the ServiceMonitors and
the PrometheusRule validate against the prometheus-operator CRDs, the PrometheusRule carries exactly the
bundled Prometheus' rule files and the sidecar ConfigMaps exactly the bundled Grafana's dashboards."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart.conftest import VARIANTS, Manifest, crd_validator, schema_errors
from jsonschema import Draft7Validator

from streamwatch_dev.chart import CHART, render
from streamwatch_dev.process import REPO_ROOT

MONITORING = VARIANTS["monitoring"]
CRD_SCRIPT = REPO_ROOT / ".ci" / "prometheus-operator-crds.sh"
API_VERSION = "monitoring.coreos.com/v1"
CRD_FILES = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}


def _crd_dir() -> Path:
    """Where .ci/prometheus-operator-crds.sh puts the CRDs; the version is read from the script (one pin)."""
    match = re.search(r'^VERSION="(v[0-9.]+)"$', CRD_SCRIPT.read_text(), re.MULTILINE)
    assert match, f"{CRD_SCRIPT} pins no VERSION"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "streamwatch"
    return cache / f"prometheus-operator-crds-{match.group(1)}"


def _validator(kind: str) -> Draft7Validator:
    path = _crd_dir() / CRD_FILES[kind]
    # No skip: without the CRDs the monitoring resources are not shown to be valid.
    assert path.is_file(), f"{path} missing: run `make deps` (.ci/prometheus-operator-crds.sh)"
    return crd_validator(path, API_VERSION, kind)


def _errors(manifest: Manifest) -> list[str]:
    assert manifest["apiVersion"] == API_VERSION
    return schema_errors(_validator(manifest["kind"]), manifest)


def _of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def _named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    (manifest,) = [m for m in _of_kind(manifests, kind) if m["metadata"]["name"] == name]
    return manifest


def _sidecar_dashboards(manifests: list[Manifest]) -> list[Manifest]:
    return [
        m for m in _of_kind(manifests, "ConfigMap") if m["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]


@pytest.fixture(scope="module")
def monitoring_manifests(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return rendered["monitoring"]


def test_off_by_default(default_manifests: list[Manifest]) -> None:
    kinds = {m["kind"] for m in default_manifests}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    assert _sidecar_dashboards(default_manifests) == []


def test_resources_validate_against_the_operator_crds(monitoring_manifests: list[Manifest]) -> None:
    resources = [m for m in monitoring_manifests if m["kind"] in CRD_FILES]
    assert sorted(m["metadata"]["name"] for m in resources) == [
        "sw-streamwatch",
        "sw-streamwatch-metrics",
        "sw-streamwatch-pushgateway",
    ]
    for resource in resources:
        assert _errors(resource) == [], resource["metadata"]["name"]
        assert resource["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_validation_refuses_a_misspelt_field(monitoring_manifests: list[Manifest]) -> None:
    """Proves the validation above can fail: a misspelt field and a wrong type are both refused."""
    monitor = _named(monitoring_manifests, "ServiceMonitor", "sw-streamwatch-pushgateway")
    misspelt = copy.deepcopy(monitor)
    misspelt["spec"]["endpoints"][0]["honourLabels"] = misspelt["spec"]["endpoints"][0].pop("honorLabels")
    assert any("honourLabels" in error for error in _errors(misspelt))
    (rule,) = _of_kind(monitoring_manifests, "PrometheusRule")
    wrong = copy.deepcopy(rule)
    wrong["spec"]["groups"][0]["rules"][0]["labels"] = {"severity": 3}
    assert _errors(wrong) != []


def _selects(monitor: Manifest, service: Manifest) -> bool:
    """Whether a ServiceMonitor's label selector matches a Service (matchLabels and `In` expressions)."""
    selector = monitor["spec"]["selector"]
    labels = service["metadata"]["labels"]
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _targets(monitor: Manifest, services: list[Manifest]) -> set[str]:
    """Services a ServiceMonitor scrapes: selected and carrying a port its endpoints name."""
    ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
    return {
        s["metadata"]["name"]
        for s in services
        if _selects(monitor, s) and ports & {p.get("name") for p in s["spec"]["ports"]}
    }


def test_service_monitors_scrape_what_the_bundled_prometheus_scrapes(
    monitoring_manifests: list[Manifest],
) -> None:
    services = _of_kind(monitoring_manifests, "Service")
    monitors = {m["metadata"]["name"]: m for m in _of_kind(monitoring_manifests, "ServiceMonitor")}
    # Every service's headless "-metrics" Service, which the bundled Prometheus resolves by DNS, and no other.
    assert _targets(monitors["sw-streamwatch-metrics"], services) == {
        f"sw-streamwatch-{component}-metrics"
        for component in ("generator", "visits-writer", "passthrough", "observer", "profile-publisher")
    }
    (endpoint,) = monitors["sw-streamwatch-metrics"]["spec"]["endpoints"]
    assert endpoint["interval"] == "30s" and "honorLabels" not in endpoint
    # The Pushgateway keeps the job label the Spark jobs push (the alert matchers select on it).
    assert _targets(monitors["sw-streamwatch-pushgateway"], services) == {"sw-streamwatch-pushgateway"}
    (endpoint,) = monitors["sw-streamwatch-pushgateway"]["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    # A disabled service is not selected; without the bundled Pushgateway there is nothing of ours to scrape.
    fewer = render(
        {
            "generator.enabled": "false",
            "pushgateway.enabled": "false",
            "pushgateway.external.url": "http://pg:9091",
        },
        values_files=MONITORING,
    )
    monitors = {m["metadata"]["name"]: m for m in _of_kind(fewer, "ServiceMonitor")}
    assert set(monitors) == {"sw-streamwatch-metrics"}
    targets = _targets(monitors["sw-streamwatch-metrics"], _of_kind(fewer, "Service"))
    assert "sw-streamwatch-generator-metrics" not in targets and len(targets) == 4


def test_targets_carry_the_labels_the_rules_select_on_either_way(
    monitoring_manifests: list[Manifest],
) -> None:
    """The target-down alert matches the chart's targets by job and namespace: the bundled Prometheus
    gives them the job names and the release's namespace that the ServiceMonitors give them (the operator
    adds the namespace of what it scrapes itself)."""
    config = yaml.safe_load(
        _named(monitoring_manifests, "ConfigMap", "sw-streamwatch-prometheus")["data"]["prometheus.yml"]
    )
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in ("prometheus", "pushgateway"):
        (static,) = jobs[name]["static_configs"]
        assert static["labels"] == {"namespace": "default"}, name
    assert {"target_label": "namespace", "replacement": "default"} in jobs["streamwatch"]["relabel_configs"]
    monitors = {m["metadata"]["name"]: m for m in _of_kind(monitoring_manifests, "ServiceMonitor")}
    job_labels = {
        name: [
            r["replacement"]
            for e in m["spec"]["endpoints"]
            for r in e["relabelings"]
            if r["targetLabel"] == "job"
        ]
        for name, m in monitors.items()
    }
    assert job_labels == {
        "sw-streamwatch-metrics": ["streamwatch"],
        "sw-streamwatch-pushgateway": ["pushgateway"],
    }
    (down,) = [
        rule
        for group in _bundled_rule_groups(monitoring_manifests)
        for rule in group["rules"]
        if rule.get("alert") == "streamwatch target down"
    ]
    matched = re.search(r'job=~"([^"]*)"', down["expr"])
    assert matched and set(matched.group(1).split("|")) == {"streamwatch", "pushgateway"} == set(jobs) - {
        "prometheus"
    }


def _bundled_rule_groups(manifests: list[Manifest]) -> list[Any]:
    files = _named(manifests, "ConfigMap", "sw-streamwatch-prometheus-rules")["data"]
    return [group for _, text in sorted(files.items()) for group in yaml.safe_load(text)["groups"]]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "alerts.lag.thresholdOffsets": 42,
            "alerts.slaMiss.for": "3m",
            "visitsWriter.settings.push_job": "vw",
        },
    ],
)
def test_prometheus_rule_is_the_bundled_rule_files(overrides: dict[str, Any]) -> None:
    """One source: after rendering, the PrometheusRule's groups are the rule files' groups, with the same
    values filled in."""
    manifests = render(overrides, values_files=MONITORING)
    (rule,) = _of_kind(manifests, "PrometheusRule")
    bundled = _bundled_rule_groups(manifests)
    assert rule["spec"]["groups"] == bundled
    assert [g["name"] for g in bundled] == ["observer", "targets", "visits-writer"]
    text = json.dumps(rule["spec"]["groups"])
    for value in overrides.values():
        assert str(value) in text


def _bundled_dashboards(manifests: list[Manifest]) -> dict[str, Any]:
    files = _named(manifests, "ConfigMap", "sw-streamwatch-grafana-dashboards")["data"]
    return {name: json.loads(text) for name, text in files.items()}


def test_dashboard_configmaps_are_the_bundled_dashboards(monitoring_manifests: list[Manifest]) -> None:
    sidecar = _sidecar_dashboards(monitoring_manifests)
    assert all(m["metadata"]["annotations"] == {"grafana_folder": "streamwatch"} for m in sidecar)
    assert sorted(m["metadata"]["name"] for m in sidecar) == [
        "sw-streamwatch-dashboard-observation",
        "sw-streamwatch-dashboard-sla",
    ]
    loaded = {name: json.loads(text) for m in sidecar for name, text in m["data"].items()}
    assert loaded == _bundled_dashboards(monitoring_manifests)
    # Every dashboard file, with its placeholders filled in.
    assert set(loaded) == {p.name for p in (CHART / "files" / "grafana" / "dashboards").glob("*.json")}
    assert re.findall(r"__[A-Z_]+__", json.dumps(loaded)) == []


def test_dashboards_follow_the_sidecar_label_without_the_bundled_grafana() -> None:
    manifests = render(
        {
            "grafana.enabled": "false",
            "monitoring.grafanaDashboards.label": "dash",
            "monitoring.grafanaDashboards.labelValue": "yes",
            "passthrough.settings.push_job": "pt",
        },
        values_files=MONITORING,
    )
    sidecar = [m for m in _of_kind(manifests, "ConfigMap") if m["metadata"]["labels"].get("dash") == "yes"]
    assert len(sidecar) == 2
    assert not any(m["metadata"]["name"] == "sw-streamwatch-grafana-dashboards" for m in manifests)
    exprs = [
        target["expr"]
        for m in sidecar
        for text in m["data"].values()
        for panel in json.loads(text)["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    assert 'streaming_batch_duration_seconds{namespace=~"$namespace", job="pt"}' in exprs


def test_network_policies_let_the_operator_prometheus_scrape(monitoring_manifests: list[Manifest]) -> None:
    """With NetworkPolicies on, the allowFrom peers get in exactly where the bundled Prometheus does."""
    allowed = {"kubernetes.io/metadata.name": "monitoring"}
    bundled_prometheus = {
        "app.kubernetes.io/name": "streamwatch",
        "app.kubernetes.io/instance": "sw",
        "app.kubernetes.io/component": "prometheus",
    }
    peers = {
        p["metadata"]["name"]: [peer for rule in p["spec"]["ingress"] for peer in rule.get("from", [])]
        for p in _of_kind(monitoring_manifests, "NetworkPolicy")
    }
    let_in = {
        name
        for name, from_ in peers.items()
        if any(peer.get("namespaceSelector", {}).get("matchLabels") == allowed for peer in from_)
    }
    scraped_by_bundled = {
        name
        for name, from_ in peers.items()
        if any(peer.get("podSelector", {}).get("matchLabels") == bundled_prometheus for peer in from_)
    }
    assert let_in == scraped_by_bundled
    assert let_in == {
        f"sw-streamwatch-{component}"
        for component in ("generator", "visits-writer", "passthrough", "observer", "pushgateway")
    }
