"""Contracts between the chart and the code: env vars are settings, metrics are emitted, Elasticsearch
fields are mapped, the Prometheus config loads, the Dockerfile lints clean."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart.conftest import SERVICES, VARIANTS
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from streamwatch_common.settings import env_name
from streamwatch_common.settings_doc import registered_settings
from streamwatch_dev.chart import CHART, render, render_rule_files
from streamwatch_dev.process import REPO_ROOT
from streamwatch_dev.prometheus import promtool
from streamwatch_dev.services import VENV_BIN
from streamwatch_dev.workloads import by_kind, service_containers
from streamwatch_observer.lag_evaluation import EVALUATIONS

Manifest = dict[str, Any]

# Series Prometheus and the Pushgateway make themselves, not the services.
BUILTIN_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE", "push_time_seconds", "push_failure_time_seconds"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "inf", "nan",
}  # fmt: skip
METRIC_CLASSES = {
    "Counter": ("_total", "_created"),
    "Gauge": (),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("_sum", "_count", "_created"),
    "Info": ("_info",),
    "Enum": (),
}


SERVICE_ENV_PREFIXES = (
    "KAFKA_", "ELASTICSEARCH_", "LOG_", "OPS_", "GENERATOR_", "VISITS_WRITER_", "PASSTHROUGH_", "OBSERVER_",
    "PROFILE_PUBLISHER_",
)  # fmt: skip


def settings_classes() -> dict[str, type[BaseSettings]]:
    return registered_settings()


def _env_names(settings_cls: type[BaseSettings]) -> dict[str, bool]:
    """Env var name → required?"""
    return {env_name(settings_cls, n, f): f.is_required() for n, f in settings_cls.model_fields.items()}


# --- environment variables ----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("service", SERVICES)
def test_every_env_var_is_a_setting_and_required_ones_are_set(
    variant: str, service: str, rendered: dict[str, list[Manifest]]
) -> None:
    classes = settings_classes()
    if service not in classes:
        pytest.fail(f"{service} registers no settings class (entry point streamwatch.settings)")
    known = _env_names(classes[service])
    found = service_containers(rendered[variant], service)
    if not found:
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        key = re.sub(r"-(\w)", lambda m: m.group(1).upper(), service)
        assert not values[key]["enabled"] or variant != "default", f"{service} not rendered"
        return
    for c in found:
        env = c.env()
        unknown = sorted(set(env) - set(known))
        assert not unknown, f"{c.where}: env vars that {classes[service].__name__} does not read: {unknown}"
        missing = sorted(name for name, required in known.items() if required and name not in env)
        assert not missing, f"{c.where}: required settings not set: {missing}"
        _settings_accept(classes[service], env, c.where)


def _settings_accept(settings_cls: type[BaseSettings], env: dict[str, dict[str, Any]], where: str) -> None:
    """The chart's literal values validate against the model (secrets filled with a placeholder)."""
    import os

    values = {name: var.get("value", "placeholder-from-secret") for name, var in env.items()}
    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if key.startswith(SERVICE_ENV_PREFIXES):
                del os.environ[key]
        os.environ.update(values)
        settings_cls()
    except ValidationError as exc:
        pytest.fail(f"{where}: the chart's settings do not validate: {exc}")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_env_contract_catches_a_wrong_name(tmp_path: Path) -> None:
    """The check above can fail: a misspelt setting in extraEnv (which the schema cannot check, unlike
    `settings`) is reported."""
    manifests = render({"generator.extraEnv[0].name": "GENERATOR_RATEE", "generator.extraEnv[0].value": "5"})
    (c,) = service_containers(manifests, "generator")
    known = _env_names(settings_classes()["generator"])
    assert "GENERATOR_RATEE" in c.env() and "GENERATOR_RATEE" not in known


def test_latency_toggle_reaches_the_visits_writer() -> None:
    manifests = render({"visitsWriter.settings.simulated_latency_seconds": "15"})
    for c in service_containers(manifests, "visits-writer"):
        assert c.env()["VISITS_WRITER_SIMULATED_LATENCY_SECONDS"]["value"] == "15"


def test_drift_shift_reaches_the_generator_and_validates() -> None:
    manifests = render(
        {"generator.settings.shift_after_records": "5000", "generator.settings.shift_field": "browser"}
    )
    for c in service_containers(manifests, "generator"):
        env = c.env()
        assert env["GENERATOR_SHIFT_AFTER_RECORDS"]["value"] == "5000"
        assert env["GENERATOR_SHIFT_FIELD"]["value"] == "browser"
        _settings_accept(settings_classes()["generator"], env, c.where)


def test_both_spark_jobs_read_the_shared_settings_under_the_same_names() -> None:
    """One naming scheme: what the chart wires or a user sets for one Spark job is spelt the same way for
    the other (only the prefix differs), and a shared setting set in values reaches both jobs."""
    from streamwatch_common.spark.job_settings import SparkJobSettings

    shared = {name.upper() for name in SparkJobSettings.model_fields}
    manifests = render({"visitsWriter.settings.connector": "jvm", "passthrough.settings.connector": "jvm"})
    wired: dict[str, set[str]] = {}
    for service, prefix in (("visits-writer", "VISITS_WRITER_"), ("passthrough", "PASSTHROUGH_")):
        (job,) = [c for c in service_containers(manifests, service) if not c.init]
        assert job.env()[f"{prefix}CONNECTOR"]["value"] == "jvm"
        wired[service] = {n.removeprefix(prefix) for n in job.env() if n.startswith(prefix)} & shared
    assert {"CONNECTOR", "SOURCE_TOPIC", "CHECKPOINT_PATH", "PUSHGATEWAY_URL"} <= wired["passthrough"]
    assert wired["visits-writer"] == wired["passthrough"]


# --- metrics ------------------------------------------------------------------------------------------
def _module_dicts(trees: list[ast.Module]) -> dict[str, set[str]]:
    """Module-level dicts of every service module, by name → their string keys."""
    dicts: dict[str, set[str]] = {}
    for tree in trees:
        for statement in tree.body:
            if isinstance(statement, ast.Assign | ast.AnnAssign) and isinstance(statement.value, ast.Dict):
                targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                keys = {
                    k.value
                    for k in statement.value.keys
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)
                }
                for target in targets:
                    if isinstance(target, ast.Name):
                        dicts.setdefault(target.id, set()).update(keys)
    return dicts


def _keyword_values(trees: list[ast.Module]) -> dict[str, set[str]]:
    """Keyword → the string constants passed as it to any call (``BatchMetricNames(duration_histogram=
    "visits_sync_batch_seconds")``), so that ``Histogram(names.duration_histogram, ...)`` resolves."""
    values: dict[str, set[str]] = {}
    for tree in trees:
        for call in ast.walk(tree):
            if isinstance(call, ast.Call):
                for keyword in call.keywords:
                    if (
                        keyword.arg
                        and isinstance(keyword.value, ast.Constant)
                        and isinstance(keyword.value.value, str)
                    ):
                        values.setdefault(keyword.arg, set()).add(keyword.value.value)
    return values


def defined_metrics() -> dict[str, str]:
    """Every metric the services' code defines, name as written → prometheus-client class: the first
    argument of each metric constructor; an attribute resolves through the string values given to the
    keyword of its name (``Histogram(names.duration_histogram, ...)``), a variable through the keys of the
    dict its help text is looked up in (``Gauge(name, HELP[name])``, wherever HELP is defined), else
    through the module's string constants and dict keys. A name found both ways takes the class of its
    most exact finding (a literal or a keyword beats a dict's keys, which beat a module's constants)."""
    trees = [
        ast.parse(path.read_text(), str(path)) for path in sorted(REPO_ROOT.glob("services/*/src/**/*.py"))
    ]
    dicts = _module_dicts(trees)
    keywords = _keyword_values(trees)
    defined: dict[str, str] = {}
    exactness: dict[str, int] = {}
    for tree in trees:
        constants: set[str] = set()
        for statement in tree.body:
            value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                constants.add(value.value)
            if isinstance(value, ast.Dict):
                constants |= {
                    k.value for k in value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
                }
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call) or not call.args:
                continue
            func = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            if func not in METRIC_CLASSES:
                continue
            first = call.args[0]
            help_text = call.args[1] if len(call.args) > 1 else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                bases, exact = {first.value}, 2
            elif isinstance(first, ast.Attribute) and first.attr in keywords:
                bases, exact = keywords[first.attr], 2
            elif (
                isinstance(help_text, ast.Subscript)
                and isinstance(help_text.value, ast.Name)
                and help_text.value.id in dicts
            ):
                bases, exact = dicts[help_text.value.id], 1
            else:
                bases, exact = {c for c in constants if re.fullmatch(r"[a-z][a-z0-9_]*", c)}, 0
            for base in bases:
                if exact >= exactness.get(base, 0):
                    defined[base], exactness[base] = func, exact
    return defined


def emitted_metric_names() -> set[str]:
    """Every series name the services expose, with the suffixes prometheus-client adds per class."""
    names: set[str] = set()
    for base, func in defined_metrics().items():
        # A Counter's samples are <stem>_total and <stem>_created, never the bare stem.
        stem = base.removesuffix("_total") if func == "Counter" else base
        if func != "Counter":
            names.add(stem)
        names |= {stem + suffix for suffix in METRIC_CLASSES[func]}
    return names


def test_every_counter_is_named_with_total_as_exposed() -> None:
    """prometheus-client exposes a Counter as <name>_total either way; writing the suffix in the code
    makes the name in code, rules, dashboards and READMEs one word."""
    counters = {name for name, func in defined_metrics().items() if func == "Counter"}
    assert {"observer_records_total", "streamwatch_pushes_total"} <= counters, "parser found too little"
    assert not sorted(name for name in counters if not name.endswith("_total"))


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (strings, label matchers, grouping clauses and ranges removed)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS or re.fullmatch(r"\d+\w*", word):
            continue
        if text[max(0, match.start() - 1)].isdigit():  # a duration suffix such as 5m
            continue
        names.add(word)
    return names


def chart_promql(tmp_path: Path, values: dict[str, str] | None = None) -> dict[str, str]:
    """Where → PromQL expression, for every alert rule, Grafana alert and dashboard panel the chart ships."""
    exprs: dict[str, str] = {}
    for path in render_rule_files(tmp_path / "rules", values):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs[f"{path.name}: {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    manifests = render(values)
    grafana = _grafana_files(manifests)
    for group in yaml.safe_load(grafana["alert-rules.yaml"])["groups"]:
        for rule in group["rules"]:
            for query in rule["data"]:
                if "expr" in query["model"]:
                    exprs[f"grafana alert {rule['title']}"] = query["model"]["expr"]
    for name, dashboard in _dashboards(manifests).items():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                if "expr" in target:
                    exprs[f"{name}: {panel['title']}"] = target["expr"]
    return exprs


def test_promql_parser_finds_metric_names() -> None:
    expr = 'max by (partition) (rate(observer_records_total{topic="visits"}[5m])) > 15 and up == 1'
    assert promql_metric_names(expr) == {"observer_records_total", "up"}
    assert promql_metric_names('time() - push_time_seconds{job="x"} > 300') == {"push_time_seconds"}


def recorded_series(tmp_path: Path) -> set[str]:
    """Names the chart's recording rules produce (Prometheus emits them, from emitted series)."""
    return {
        rule["record"]
        for path in render_rule_files(tmp_path / "recorded", None)
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def test_every_metric_used_by_alerts_and_dashboards_is_emitted(tmp_path: Path) -> None:
    recorded = recorded_series(tmp_path)
    assert "streamwatch:observer_completeness_gap_records" in recorded, "recording-rule parser found none"
    emitted = emitted_metric_names() | recorded
    assert {"visits_sync_duration", "observer_lag_offsets"} <= emitted, "metric parser found too little"
    # The listener's source and observation gauges, for both name sets (the passthrough's end offset is
    # what the observer's completeness check reads).
    assert {
        "visits_sync_source_end_offset",
        "visits_sync_offsets_behind_latest_max",
        "visits_sync_observed_null_values",
        "streaming_batch_source_end_offset",
        "streaming_batch_offsets_behind_latest_max",
        "streamwatch_progress_unreadable_total",
    } <= emitted
    exprs = chart_promql(tmp_path)
    assert any("SLA miss visits synchronizer" in where for where in exprs)
    unknown = {
        where: sorted(promql_metric_names(expr) - emitted - BUILTIN_SERIES)
        for where, expr in exprs.items()
        if promql_metric_names(expr) - emitted - BUILTIN_SERIES
    }
    assert not unknown, f"metrics no service emits: {unknown}"


# --- Grafana ------------------------------------------------------------------------------------------
def _grafana_files(manifests: list[Manifest]) -> dict[str, str]:
    (cm,) = [m for m in by_kind(manifests, "ConfigMap") if m["metadata"]["name"] == "sw-streamwatch-grafana"]
    return dict(cm["data"])


def _dashboards(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    (cm,) = [
        m
        for m in by_kind(manifests, "ConfigMap")
        if m["metadata"]["name"] == "sw-streamwatch-grafana-dashboards"
    ]
    return {name: json.loads(body) for name, body in cm["data"].items()}


def _datasource_uid(dashboard: dict[str, Any], ref: dict[str, str]) -> str:
    """The uid a panel's or query's datasource stands for: a ${variable} resolves to that datasource
    variable's default, the bundled Grafana's datasource."""
    match = re.fullmatch(r"\$\{(\w+)\}", ref["uid"])
    if not match:
        return ref["uid"]
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == match.group(1)]
    return str(variable["current"]["value"])


def test_grafana_provisioning_is_well_formed() -> None:
    manifests = render(
        {
            "alerts.slaMiss.thresholdMs": "7000",
            "alerts.lagSeconds.thresholdSeconds": "90",
            "alerts.drift.threshold": "0.4",
            "alerts.driftReference.threshold": "0.35",
        }
    )
    files = _grafana_files(manifests)
    datasources = yaml.safe_load(files["datasources.yaml"])
    assert datasources["apiVersion"] == 1
    by_uid = {d["uid"]: d for d in datasources["datasources"]}
    assert set(by_uid) == {"streamwatch-prometheus", "streamwatch-observations", "streamwatch-profiles"}
    for uid in ("streamwatch-observations", "streamwatch-profiles"):
        assert by_uid[uid]["type"] == "elasticsearch"
        assert by_uid[uid]["jsonData"]["timeField"] == "@timestamp"
        assert by_uid[uid]["secureJsonData"]["basicAuthPassword"] == "$ELASTICSEARCH_PASSWORD"
    assert by_uid["streamwatch-observations"]["jsonData"]["index"] == "visits_observation_stats"
    assert by_uid["streamwatch-prometheus"]["jsonData"]["manageAlerts"] is True

    rules = yaml.safe_load(files["alert-rules.yaml"])
    assert rules["apiVersion"] == 1
    for group in rules["groups"]:
        assert {"name", "folder", "interval", "rules"} <= set(group)
        for rule in group["rules"]:
            assert {"uid", "title", "condition", "data", "for", "noDataState", "execErrState"} <= set(rule)
            refs = {q["refId"] for q in rule["data"]}
            assert rule["condition"] in refs
            for q in rule["data"]:
                assert q["datasourceUid"] in by_uid or q["datasourceUid"] == "__expr__"
    sla = next(r for g in rules["groups"] for r in g["rules"] if r["title"] == "SLA miss visits synchronizer")
    assert sla["data"][-1]["model"]["conditions"][0]["evaluator"]["params"] == [7000]
    drift = next(r for g in rules["groups"] for r in g["rules"] if r["title"] == "field drift")
    assert drift["data"][-1]["model"]["conditions"][0]["evaluator"]["params"] == [0.4]
    reference = next(
        r for g in rules["groups"] for r in g["rules"] if r["title"] == "field drift from reference"
    )
    assert reference["data"][-1]["model"]["conditions"][0]["evaluator"]["params"] == [0.35]

    dashboards = _dashboards(manifests)
    assert {"sla.json", "observation.json"} <= set(dashboards)
    for dashboard in dashboards.values():
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                assert _datasource_uid(dashboard, target["datasource"]) in by_uid, panel["title"]
    sla_panel = dashboards["sla.json"]["panels"][0]
    steps = sla_panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == 7000, "the SLA line follows alerts.slaMiss.thresholdMs"
    (drift_panel,) = [
        p for p in dashboards["observation.json"]["panels"] if p["title"].startswith("Field drift")
    ]
    assert drift_panel["targets"][0]["expr"] == (
        'max by (partition, field) (observer_field_drift{namespace=~"$namespace"})'
    )
    steps = drift_panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == 0.4, "the drift line follows alerts.drift.threshold"
    (reference_panel,) = [
        p
        for p in dashboards["observation.json"]["panels"]
        if "observer_field_drift_reference" in str(p["targets"])
    ]
    steps = reference_panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == 0.35, "the reference drift line follows alerts.driftReference.threshold"
    titles = {p["title"] for d in dashboards.values() for p in d["panels"]}
    assert {
        "Invalid records per minute",
        "Spark jobs' lag per partition (offsets)",
        "Spark jobs' lag per partition (seconds)",
        "Spark jobs' lag evaluation per partition (Burrow rules)",
        "Profile reports",
        "Passthrough offsets behind latest (max over partitions)",
        "Visits writer offsets behind latest (max over partitions)",
        "Null or blank required fields per micro-batch (opt-in observe)",
    } <= titles
    panels = {p["title"]: p for p in dashboards["observation.json"]["panels"]}
    seconds = panels["Spark jobs' lag per partition (seconds)"]["fieldConfig"]["defaults"]["thresholds"]
    assert seconds["steps"][-1]["value"] == 90, "the line follows alerts.lagSeconds.thresholdSeconds"
    evaluation = panels["Spark jobs' lag evaluation per partition (Burrow rules)"]
    shown = set(
        re.findall(r'observer_lag_evaluation\{[^}]*status="(\w+)"\}', evaluation["targets"][0]["expr"])
    )
    mapped = {
        o["text"].lower()
        for m in evaluation["fieldConfig"]["defaults"]["mappings"]
        for o in m["options"].values()
    }
    assert shown == mapped == set(EVALUATIONS), "every status the observer exports is drawn and named"


def _job_matchers(expr: str) -> set[str]:
    return set(re.findall(r'job="([^"]*)"', expr))


@pytest.mark.parametrize(
    "values",
    [{}, {"visitsWriter.settings.push_job": "vw-x", "passthrough.settings.push_job": "pt-x",
          "observer.settings.index": "obs-x", "profilePublisher.settings.elasticsearch_index": "prof-x"}],
    ids=["default", "renamed"],
)  # fmt: skip
def test_alert_matchers_and_datasource_indices_are_the_services_settings(
    values: dict[str, str], tmp_path: Path
) -> None:
    """The job the SLA rules and dashboards match and the indices Grafana reads are the rendered env
    values of the services that push and write them, renamed or not."""
    manifests = render(values)

    def env(service: str, name: str) -> str:
        values_seen = {c.env()[name]["value"] for c in service_containers(manifests, service) if not c.init}
        (value,) = values_seen
        return str(value)

    writer_job = env("visits-writer", "VISITS_WRITER_PUSH_JOB")
    passthrough_job = env("passthrough", "PASSTHROUGH_PUSH_JOB")
    assert writer_job == values.get("visitsWriter.settings.push_job", "visits_to_delta_synchronizer")
    assert passthrough_job == values.get("passthrough.settings.push_job", "passthrough")

    exprs = chart_promql(tmp_path, values)
    sla = {where: e for where, e in exprs.items() if "visits_sync_" in e or "push_time_seconds" in e}
    assert any("SLA miss visits synchronizer" in where for where in sla) and len(sla) >= 6
    for where, expr in sla.items():
        assert _job_matchers(expr) == {writer_job}, f"{where}: {expr}"
    neutral = {where: e for where, e in exprs.items() if "streaming_batch_" in e}
    assert neutral, "a dashboard shows the passthrough's batches"
    for where, expr in neutral.items():
        assert _job_matchers(expr) == {passthrough_job}, f"{where}: {expr}"

    datasources = {
        d["uid"]: d for d in yaml.safe_load(_grafana_files(manifests)["datasources.yaml"])["datasources"]
    }
    assert datasources["streamwatch-observations"]["jsonData"]["index"] == env("observer", "OBSERVER_INDEX")
    assert datasources["streamwatch-profiles"]["jsonData"]["index"] == env(
        "profile-publisher", "PROFILE_PUBLISHER_ELASTICSEARCH_INDEX"
    )
    if values:
        assert datasources["streamwatch-observations"]["jsonData"]["index"] == "obs-x"


def test_chart_values_of_shared_names_are_the_services_defaults() -> None:
    """values.yaml sets the shared names explicitly (so every layer renders them); they stay the code's
    defaults, so a service run without the chart writes and pushes where the chart looks."""
    settings = settings_classes()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    pairs = [
        (values["visitsWriter"]["settings"]["push_job"], settings["visits-writer"], "push_job"),
        (values["passthrough"]["settings"]["push_job"], settings["passthrough"], "push_job"),
        (values["observer"]["settings"]["index"], settings["observer"], "index"),
        (values["observer"]["settings"]["drift_min_records"], settings["observer"], "drift_min_records"),
        (
            values["observer"]["settings"]["drift_reference_windows"],
            settings["observer"],
            "drift_reference_windows",
        ),
        (
            values["observer"]["settings"]["drift_reference_name"],
            settings["observer"],
            "drift_reference_name",
        ),
        (
            values["profilePublisher"]["settings"]["elasticsearch_index"],
            settings["profile-publisher"],
            "elasticsearch_index",
        ),
    ]
    for value, settings_cls, field in pairs:
        assert value == settings_cls.model_fields[field].default, f"{settings_cls.__name__}.{field}"


def _es_fields_used(target: dict[str, Any]) -> set[str]:
    fields = {target.get("timeField", "@timestamp")}
    for item in target.get("metrics", []) + target.get("bucketAggs", []):
        if item.get("field"):
            fields.add(item["field"])
    # Lucene "field:value" terms of the query string
    fields |= set(re.findall(r"([A-Za-z_@][\w.@]*):", target.get("query", "")))
    return fields


def test_every_elasticsearch_field_used_exists_in_the_index_mappings() -> None:
    from streamwatch_observer.settings import ObserverSettings
    from streamwatch_observer.sink import MAPPINGS as OBSERVATION_MAPPINGS
    from streamwatch_profile_publisher.indexer import MAPPINGS as PROFILE_MAPPINGS
    from streamwatch_profile_publisher.settings import ProfilePublisherSettings

    manifests = render()
    datasources = {
        d["uid"]: d for d in yaml.safe_load(_grafana_files(manifests)["datasources.yaml"])["datasources"]
    }
    mapped = {
        "streamwatch-observations": set(OBSERVATION_MAPPINGS["properties"]),
        "streamwatch-profiles": set(PROFILE_MAPPINGS["properties"]),
    }
    # The datasources read the indices the services write.
    assert (
        datasources["streamwatch-observations"]["jsonData"]["index"]
        == ObserverSettings.model_fields["index"].default
    )
    assert (
        datasources["streamwatch-profiles"]["jsonData"]["index"]
        == ProfilePublisherSettings.model_fields["elasticsearch_index"].default
    )
    for uid, fields in mapped.items():
        assert datasources[uid]["jsonData"]["timeField"] in fields
    used: dict[str, set[str]] = {uid: set() for uid in mapped}
    for dashboard in _dashboards(manifests).values():
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                uid = _datasource_uid(dashboard, target["datasource"])
                if uid in used:
                    used[uid] |= _es_fields_used(target)
            panel_uid = _datasource_uid(dashboard, panel["datasource"])
            for override in panel.get("fieldConfig", {}).get("overrides", []):
                if panel_uid in used and override["matcher"]["id"] == "byName":
                    used[panel_uid].add(override["matcher"]["options"])
    assert "invalid_event_time" in used["streamwatch-observations"]
    assert "report_url" in used["streamwatch-profiles"]
    for uid, fields in used.items():
        assert fields <= mapped[uid], (
            f"{uid}: fields not in the index mappings: {sorted(fields - mapped[uid])}"
        )


def test_both_indices_name_the_replica_field_alike() -> None:
    """Grafana and users filter observations and profile reports by the same field name."""
    from streamwatch_observer.sink import MAPPINGS as OBSERVATION_MAPPINGS
    from streamwatch_profile_publisher.indexer import MAPPINGS as PROFILE_MAPPINGS

    for mappings in (OBSERVATION_MAPPINGS, PROFILE_MAPPINGS):
        assert {field for field in mappings["properties"] if "replica" in field} == {"replica"}


# --- Prometheus configuration -------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["default", "external-infra", "production-like"])
def test_rendered_prometheus_config_passes_promtool(variant: str, tmp_path: Path) -> None:
    manifests = render(values_files=VARIANTS[variant])
    (config,) = [
        m for m in by_kind(manifests, "ConfigMap") if m["metadata"]["name"] == "sw-streamwatch-prometheus"
    ]
    # Same layout as in the pod: prometheus.yml with the rules ConfigMap mounted at rules/ beside it.
    (tmp_path / "prometheus.yml").write_text(config["data"]["prometheus.yml"])
    (rules,) = [
        m
        for m in by_kind(manifests, "ConfigMap")
        if m["metadata"]["name"] == "sw-streamwatch-prometheus-rules"
    ]
    assert rules["data"], "no rule files rendered"
    (tmp_path / "rules").mkdir()
    for name, body in rules["data"].items():
        (tmp_path / "rules" / name).write_text(body)
    result = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules['data'])} rule files found" in result.stdout + result.stderr
    parsed = yaml.safe_load(config["data"]["prometheus.yml"])
    jobs = {job["job_name"]: job for job in parsed["scrape_configs"]}
    assert jobs["pushgateway"]["honor_labels"] is True
    # every enabled service is discovered through its headless -metrics Service, on its /metrics port
    discovered = {sd["names"][0].split(".")[0]: sd["port"] for sd in jobs["streamwatch"]["dns_sd_configs"]}
    headless = {
        s["metadata"]["name"]: s["spec"]["ports"][0]["port"]
        for s in by_kind(manifests, "Service")
        if s["spec"].get("clusterIP") == "None"
    }
    assert discovered == headless
    assert len(discovered) == len([s for s in SERVICES if any(service_containers(manifests, s))])


def test_prometheus_pod_mounts_the_rules_configmap(default_manifests: list[Manifest]) -> None:
    (deployment,) = [
        m
        for m in by_kind(default_manifests, "Deployment")
        if m["metadata"]["name"] == "sw-streamwatch-prometheus"
    ]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["rules"]["configMap"]["name"] == "sw-streamwatch-prometheus-rules"
    mounts = {
        m["name"]: m["mountPath"]
        for m in deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert mounts["rules"] == "/etc/prometheus/rules" and mounts["config"] == "/etc/prometheus/prometheus.yml"


def test_every_scraped_pod_serves_metrics_on_its_declared_port(default_manifests: list[Manifest]) -> None:
    for service in SERVICES:
        for c in service_containers(default_manifests, service):
            if c.init:
                continue
            annotations = c.workload["spec"]["template"]["metadata"]["annotations"]
            port = int(annotations["prometheus.io/port"])
            assert port in {p["containerPort"] for p in c.spec["ports"]}, c.where
            env = c.env()
            served = env.get("PROFILE_PUBLISHER_PORT", env.get("OPS_PORT", {})).get("value")
            assert served == str(port), f"{c.where}: serves /metrics on {served}, annotated {port}"


# --- Dockerfile ---------------------------------------------------------------------------------------
DOCKERFILE = REPO_ROOT / "services" / "Dockerfile"
SPARK_SERVICES = {"visits-writer", "passthrough"}


def _stages(text: str) -> dict[str, tuple[str, str]]:
    """Stage name → (the stage it starts from, its instructions)."""
    found = list(re.finditer(r"^FROM (\S+) AS (\S+)$", text, re.M))
    return {
        m.group(2): (m.group(1), text[m.end() : found[i + 1].start() if i + 1 < len(found) else None])
        for i, m in enumerate(found)
    }


def test_dockerfile_passes_hadolint_and_follows_the_house_rules() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+$", text, re.M), (
        "python base not pinned"
    )
    assert re.search(r"^ARG UV_IMAGE=ghcr.io/astral-sh/uv:\d+\.\d+\.\d+$", text, re.M), "uv not pinned"
    assert re.search(r"^ARG SERVICE$", text, re.M), "no default service: a build names one"
    assert '--no-install-workspace --package "streamwatch-${SERVICE}"' in text, "dependencies first"
    # The final stage starts from the service's own stage and runs as the non-root user.
    final = text[text.rindex("\nFROM ") :]
    assert final.startswith("\nFROM service-${SERVICE}\n")
    assert re.search(r"^USER 10001", final, re.M)
    assert "ENV PATH=/app/.venv/bin:$PATH" in final


def test_no_dockerfile_per_service() -> None:
    assert sorted(p.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.glob("services/**/Dockerfile")) == [
        "services/Dockerfile"
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_its_stage_command_and_runtime(service: str) -> None:
    stages = _stages(DOCKERFILE.read_text())
    parent, body = stages[f"service-{service}"]
    # the command the chart runs is the image's console script
    assert f'CMD ["streamwatch-{service}"]' in body
    chain = [parent]
    while chain[-1] in stages:
        chain.append(stages[chain[-1]][0])
    has_jre = any("openjdk" in stages[name][1] for name in chain if name in stages)
    assert has_jre == (service in SPARK_SERVICES), "JRE only in the Spark images"
    if service in SPARK_SERVICES:
        prefix = service.replace("-", "_").upper()
        assert f"ENV {prefix}_SPARK_JARS_DIR=/opt/spark-jars" in body


def test_hadolint_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0


# --- the observer's judgements on the dashboards ------------------------------------------------------
# Every signal of the lag evaluation, drift and completeness checks, as a metric or a document field.
JUDGEMENT_METRICS = {
    "observer_lag_evaluation",
    "observer_lag_seconds",
    "observer_field_drift",
    "observer_field_drift_reference",
    "streamwatch:observer_completeness_gap_records",
}
JUDGEMENT_FIELDS = {"window": {"drift_max"}, "lag": {"evaluation"}}


def _document_panel_fields(dashboards: dict[str, Any]) -> dict[str, set[str]]:
    """doc_type → every field an Elasticsearch panel aggregates or buckets on."""
    fields: dict[str, set[str]] = {}
    for dashboard in dashboards.values():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                match = re.fullmatch(r"doc_type:(\w+)", target.get("query", ""))
                if match is None:
                    continue
                used = {m["field"] for m in target["metrics"] if "field" in m}
                used |= {b["field"] for b in target["bucketAggs"]}
                fields.setdefault(match.group(1), set()).update(used)
    return fields


def test_dashboards_chart_every_lag_drift_and_completeness_signal() -> None:
    dashboards = _dashboards(render())
    exprs = [t["expr"] for d in dashboards.values() for p in d["panels"] for t in p["targets"] if "expr" in t]
    charted = set().union(*(promql_metric_names(e) for e in exprs))
    assert not JUDGEMENT_METRICS - charted, f"not on any dashboard: {JUDGEMENT_METRICS - charted}"
    fields = _document_panel_fields(dashboards)
    for doc_type, wanted in JUDGEMENT_FIELDS.items():  # that they are mapped: the mapping test above
        assert wanted <= fields.get(doc_type, set()), f"{doc_type} documents: {wanted} not charted"
