"""The Grafana dashboards, read statically from the render: each picks its datasources and the release's
namespace with template variables and reads that namespace in every Prometheus query, so one Grafana
shows several releases apart; the SLA dashboard's p50/p95 come from the visits writer's batch histogram;
the observation dashboard charts the observer's own health from the metrics the observer exports."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from chart.test_contract import promql_metric_names

from streamwatch_common.kafka_health import RENEWALS
from streamwatch_common.spark.batch_metric_names import VISITS_SYNC
from streamwatch_dev.chart import render
from streamwatch_observer.metrics import ASSIGNED, COMMIT_FAILURES, PAUSED, SINK_FAILURES

Manifest = dict[str, Any]
NAMESPACE_MATCHER = 'namespace=~"$namespace"'


def _configmap(manifests: list[Manifest], name: str) -> dict[str, str]:
    (configmap,) = [m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == name]
    return dict(configmap["data"])


def dashboards(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    files = _configmap(manifests, "sw-streamwatch-grafana-dashboards")
    return {name: json.loads(text) for name, text in files.items()}


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def prometheus_exprs(dashboard: dict[str, Any]) -> dict[str, str]:
    """Panel title (and refId) → PromQL of every Prometheus query of the dashboard."""
    return {
        f"{panel['title']} {target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if target["datasource"]["type"] == "prometheus"
    }


def unscoped_selectors(expr: str) -> list[str]:
    """Selectors of the expression that lack the $namespace matcher (a bare name counts as one)."""
    missing = []
    for name in promql_metric_names(expr):
        for match in re.finditer(rf"(?<![\w:]){re.escape(name)}(\{{[^}}]*\}})?", expr):
            if NAMESPACE_MATCHER not in (match.group(1) or ""):
                missing.append(match.group(0))
    return missing


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    return render()


def test_every_dashboard_picks_its_datasources_and_the_namespace(manifests: list[Manifest]) -> None:
    provisioned = {
        d["uid"]: d["type"]
        for d in yaml.safe_load(_configmap(manifests, "sw-streamwatch-grafana")["datasources.yaml"])[
            "datasources"
        ]
    }
    found = dashboards(manifests)
    assert set(found) == {"sla.json", "observation.json"}
    for name, dashboard in found.items():
        declared = variables(dashboard)
        namespace = declared["namespace"]
        assert namespace["type"] == "query" and namespace["datasource"]["uid"] == "${datasource}", name
        assert re.fullmatch(r"label_values\(.+, namespace\)", namespace["query"]["query"]), name
        sources = {n: v for n, v in declared.items() if v["type"] == "datasource"}
        assert sources["datasource"]["query"] == "prometheus", name
        # Each defaults to the bundled Grafana's datasource of its type, so that one works unchanged.
        for source in sources.values():
            assert provisioned[source["current"]["value"]] == source["query"], f"{name}: {source['name']}"
        refs = [p["datasource"] for p in dashboard["panels"]]
        refs += [t["datasource"] for p in dashboard["panels"] for t in p.get("targets", [])]
        assert refs, name
        for ref in refs:
            variable = re.fullmatch(r"\$\{(\w+)\}", ref["uid"])
            assert variable, f"{name}: a fixed datasource uid {ref['uid']}"
            assert sources[variable.group(1)]["query"] == ref["type"], f"{name}: {ref}"


def test_every_prometheus_query_reads_the_chosen_namespace(manifests: list[Manifest]) -> None:
    for name, dashboard in dashboards(manifests).items():
        exprs = prometheus_exprs(dashboard)
        assert len(exprs) >= 5, name
        for where, expr in exprs.items():
            assert promql_metric_names(expr), f"{name}: {where}: no series read"
            assert unscoped_selectors(expr) == [], f"{name}: {where}: {expr}"


def test_a_query_without_the_namespace_is_caught() -> None:
    """The check above can fail: one selector of several without the matcher is reported."""
    expr = (
        'max by (partition) (observer_lag_offsets{namespace=~"$namespace"}) - observer_lag_seconds{job="x"}'
    )
    assert unscoped_selectors(expr) == ['observer_lag_seconds{job="x"}']
    assert unscoped_selectors("max(up)") == ["up"]


@pytest.mark.parametrize("push_job", [None, "vw-x"])
def test_sla_dashboard_shows_p50_and_p95_of_the_batch_histogram(push_job: str | None) -> None:
    values = {"alerts.slaMiss.thresholdMs": "7000"}
    if push_job:
        values["visitsWriter.settings.push_job"] = push_job
    sla = dashboards(render(values))["sla.json"]
    panels = [p for p in sla["panels"] for t in p["targets"] if "histogram_quantile" in t.get("expr", "")]
    assert {p["title"] for p in panels} == {
        "Micro-batch duration p50 (histogram)",
        "Micro-batch duration p95 (histogram)",
    }
    bucket = f"{VISITS_SYNC.duration_histogram}_bucket"
    assert bucket == "visits_sync_batch_seconds_bucket"  # the name the listener pushes
    quantiles = set()
    for panel in panels:
        (target,) = panel["targets"]
        match = re.fullmatch(
            r"1000 \* histogram_quantile\((0\.\d+), sum by \(([^)]*)\)"
            r" \(rate\((\w+)\{([^}]*)\}\[\$__rate_interval\]\)\)\)",
            target["expr"],
        )
        assert match, target["expr"]
        quantile, by, metric, matchers = match.groups()
        quantiles.add(quantile)
        assert metric == bucket
        assert {"le", "namespace"} <= {label.strip() for label in by.split(",")}
        assert NAMESPACE_MATCHER in matchers
        assert re.findall(r'job="([^"]*)"', matchers) == [push_job or "visits_to_delta_synchronizer"]
        # Milliseconds, like the gauge's panel, with the SLA drawn at alerts.slaMiss.thresholdMs.
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["unit"] == "ms"
        assert defaults["thresholds"]["steps"][-1]["value"] == 7000
    assert quantiles == {"0.5", "0.95"}


def _exposed(metric: Any) -> str:
    """The series name prometheus-client exposes for a metric object (a counter's gets _total)."""
    (family,) = metric.describe()
    return f"{family.name}_total" if family.type == "counter" else family.name


def test_observation_dashboard_charts_the_observers_health(manifests: list[Manifest]) -> None:
    observation = dashboards(manifests)["observation.json"]
    health = {
        p["title"]: promql_metric_names(t["expr"])
        for p in observation["panels"]
        if p["title"].startswith("Observer health:")
        for t in p["targets"]
    }
    charted = set().union(*health.values())
    wanted = {_exposed(m) for m in (ASSIGNED, PAUSED, SINK_FAILURES, COMMIT_FAILURES, RENEWALS)}
    assert wanted == {
        "observer_assigned_partitions",
        "observer_paused",
        "observer_sink_failures_total",
        "observer_commit_failures_total",
        "kafka_client_renewals_total",
    }
    assert charted == wanted, health
    # The renewals are the observer's own (the generator's producer counts renewals under the same name).
    (renewals,) = [e for e in prometheus_exprs(observation).values() if "kafka_client_renewals_total" in e]
    assert 'component="observer"' in renewals
    # And the target-down alert's series, for every scrape target of the chart.
    assert prometheus_exprs(observation)["Scrape targets up A"] == (
        'up{namespace=~"$namespace", job=~"streamwatch|pushgateway"}'
    )
