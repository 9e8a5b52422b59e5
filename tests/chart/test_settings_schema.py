"""`<component>.settings` takes the settings of the component's model and nothing else: a misspelt key, a
shared unprefixed setting, a secret or a value the chart wires itself fails `helm template` naming the key;
what it takes reaches the service as the model reads it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart.conftest import SERVICES, VARIANTS

from streamwatch_common.settings import unknown_variables
from streamwatch_common.settings_doc import registered_settings
from streamwatch_common.settings_schema import CHART_WIRED, chart_settable, values_key
from streamwatch_dev.chart import CHART, helm, parse_manifests, render
from streamwatch_dev.process import REPO_ROOT
from streamwatch_dev.wiring import local_container
from streamwatch_dev.workloads import service_containers

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
# Values files kept elsewhere in the repository, each list rendered in that order (VARIANTS has the rest).
OTHER_VALUES_FILES = {
    "offline": [REPO_ROOT / "k8s" / "offline" / "values.yaml"],
    "offline-e2e": [
        REPO_ROOT / "k8s" / "offline" / "values.yaml",
        REPO_ROOT / "tests" / "e2e_kind" / "values.yaml",
    ],
    "demo": [REPO_ROOT / "dev" / "src" / "streamwatch_dev" / "demo-values.yaml"],
}


def _refusal(*args: str) -> str:
    with pytest.raises(RuntimeError) as failed:
        helm("template", "sw", str(CHART), *args)
    message = str(failed.value)
    assert "values don't meet the specifications of the schema" in message, message
    return message


def test_a_misspelt_setting_fails_the_render_naming_the_key() -> None:
    """The issue's case: `windowSeconds` rendered OBSERVER_WINDOWSECONDS, which nothing read."""
    message = _refusal("--set", "observer.settings.windowSeconds=30")
    assert "observer.settings: Additional property windowSeconds is not allowed" in message


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("observer.settings.log_level=DEBUG", "log_level"),  # shared: LOG_LEVEL, from logging.level
        ("generator.settings.kafka_bootstrap_servers=k:9092", "kafka_bootstrap_servers"),
        ("observer.settings.topic=other", "topic"),  # wired: kafka.topics.processedVisits.name
        ("visitsWriter.settings.checkpoint_path=/x", "checkpoint_path"),
        ("profilePublisher.settings.token=plain", "token"),  # a secret: from a Secret only
        ("profilePublisher.settings.port=9000", "port"),  # wired: profilePublisher.port
    ],
)
def test_shared_secret_and_wired_settings_are_refused(value: str, key: str) -> None:
    assert f"Additional property {key} is not allowed" in _refusal("--set", value)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("observer.settings.window_seconds=soon", "observer.settings.window_seconds"),
        ("observer.settings.window_records=1.5", "observer.settings.window_records"),
        ("passthrough.settings.connector=scala", "passthrough.settings.connector"),
        ("visitsWriter.settings.observe_null_counts=maybe", "visitsWriter.settings.observe_null_counts"),
        ("generator.settings.missing_fields=page\\,colour", "generator.settings.missing_fields"),
        ("generator.settings.duplicate_percent=101", "generator.settings.duplicate_percent"),
    ],
)
def test_values_of_the_wrong_type_or_choice_are_refused(value: str, where: str) -> None:
    assert where in _refusal("--set", value)


def test_decimals_from_set_whole_numbers_from_files_and_nulls_reach_the_service_as_it_reads_them(
    tmp_path: Path,
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "profilePublisher:\n  settings:\n    max_report_bytes: 16777216\n"
        "generator:\n  settings:\n    skew_partition: null\n    seed: 7\n"
    )
    # --set gives a decimal as a string, a values file gives every number as a float.
    manifests = render({"observer.settings.window_seconds": "0.5"}, values_files=[values])

    def env(service: str) -> dict[str, Any]:
        (c,) = [c for c in service_containers(manifests, service) if not c.init]
        return {name: var.get("value") for name, var in c.env().items()}

    assert env("observer")["OBSERVER_WINDOW_SECONDS"] == "0.5"
    assert env("profile-publisher")["PROFILE_PUBLISHER_MAX_REPORT_BYTES"] == "16777216"
    assert env("generator")["GENERATOR_SEED"] == "7"
    assert "GENERATOR_SKEW_PARTITION" not in env("generator"), "null: unset, the service's default"


@pytest.mark.parametrize("service", SERVICES)
def test_the_schema_takes_exactly_the_settable_fields_of_the_model(service: str) -> None:
    settings_cls = registered_settings()[service]
    schema = SCHEMA["properties"][values_key(service)]["properties"]["settings"]
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == list(chart_settable(service, settings_cls))
    for name in schema["properties"]:
        field = settings_cls.model_fields[name]
        assert field.validation_alias is None and "Secret" not in str(field.annotation), name
    # values.yaml's own settings are among them.
    assert set(VALUES[values_key(service)]["settings"]) <= set(schema["properties"])


@pytest.mark.parametrize("service", SERVICES)
def test_the_chart_wires_exactly_the_settings_it_refuses(service: str, tmp_path: Path) -> None:
    """CHART_WIRED is what the rendered environment sets from other values. A prefixed variable the chart
    renders on its own otherwise must be a settable key with a chart default (e.g. `instance`): set under
    `settings`, it replaces the default instead of naming the variable twice."""
    settings_cls = registered_settings()[service]
    prefix = str(settings_cls.model_config["env_prefix"])
    settable = chart_settable(service, settings_cls)
    given = set(VALUES[values_key(service)]["settings"])
    (c,) = [c for c in service_containers(render(), service) if not c.init]
    by_chart = {name.removeprefix(prefix).lower() for name in c.env() if name.startswith(prefix)} - given
    assert set(CHART_WIRED[service]) <= by_chart, f"wired in CHART_WIRED but not rendered: {service}"
    defaulted = by_chart - set(CHART_WIRED[service])
    assert defaulted <= set(settable), f"rendered by the chart, neither wired nor settable: {defaulted}"
    if not defaulted:
        return
    args = ["template", "sw", str(CHART)]
    for key in sorted(defaulted):
        args += ["--set-string", f"{values_key(service)}.settings.{key}=7"]
    manifests = parse_manifests(helm(*args))
    for container in service_containers(manifests, service):
        names = [e["name"] for e in container.spec.get("env", [])]
        assert len(names) == len(set(names)), f"{container.where}: a variable named twice"
        for key in defaulted:
            assert container.env()[f"{prefix}{key.upper()}"]["value"] == "7", container.where


@pytest.mark.parametrize("files", sorted(OTHER_VALUES_FILES))
def test_every_values_file_of_the_repository_passes_the_schema(files: str) -> None:
    """The ci/ variants and the kind values are rendered by every variant test; these are the rest."""
    assert not set(OTHER_VALUES_FILES) & set(VARIANTS)
    manifests = render(values_files=OTHER_VALUES_FILES[files])
    assert service_containers(manifests, "observer")


def test_no_environment_baked_into_an_image_is_refused_by_its_service() -> None:
    """The Dockerfile's ENV lines reach every container before the chart's env: a prefixed one must be a
    setting of the service whose stage sets it."""
    text = (REPO_ROOT / "services" / "Dockerfile").read_text()
    stages = re.split(r"^FROM \S+ AS (\S+)$", text, flags=re.M)
    names_by_stage = {
        stage: re.findall(r"(?:^ENV |\\\n\s+)([A-Z][A-Z0-9_]*)=", body, flags=re.M)
        for stage, body in zip(stages[1::2], stages[2::2], strict=True)
    }
    prefixes = {
        str(cls.model_config["env_prefix"]): service for service, cls in registered_settings().items()
    }
    checked = 0
    for stage, names in names_by_stage.items():
        for name in names:
            for prefix, service in prefixes.items():
                if name.startswith(prefix):
                    assert stage == f"service-{service}", f"{name} set in stage {stage}"
                    settings_cls = registered_settings()[service]
                    assert name.removeprefix(prefix).lower() in settings_cls.model_fields, name
                    checked += 1
    assert checked >= 2, "the Spark images' jar directories are found"


@pytest.mark.parametrize("files", [[], OTHER_VALUES_FILES["demo"]], ids=["default", "demo"])
def test_the_local_runtime_gives_each_service_no_variable_it_refuses(
    files: list[Path], tmp_path: Path
) -> None:
    """`make demo` and the chart-driven run start each service with its container's rendered environment,
    made local (streamwatch_dev.wiring): not one prefixed variable there may be unknown to the service."""
    manifests = render(values_files=files)
    for service in SERVICES:
        settings_cls = registered_settings()[service]
        found = service_containers(manifests, service)
        assert found, service
        for c in found:
            local = local_container(c, manifests, {}, tmp_path)
            assert unknown_variables(settings_cls, local.env) == [], c.where
