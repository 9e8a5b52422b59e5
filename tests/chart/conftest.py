"""Fixtures of the static chart tests: the chart rendered once per values variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from streamwatch_dev.chart import CHART, render
from streamwatch_dev.process import REPO_ROOT

Manifest = dict[str, Any]

# Every values variant the tests render: the defaults, each ci/*-values.yaml and the kind overrides.
VARIANTS: dict[str, list[Path]] = {
    "default": [],
    **{
        path.name.removesuffix("-values.yaml"): [path]
        for path in sorted((CHART / "ci").glob("*-values.yaml"))
    },
    "kind": [REPO_ROOT / "k8s" / "streamwatch-kind-values.yaml"],
}

# Our services: chart component → settings entry-point name (the same words).
SERVICES = ("generator", "visits-writer", "passthrough", "observer", "profile-publisher")


def strict_schema(schema: Any) -> Any:
    """A CRD's OpenAPI schema refusing unknown fields, as `kubectl apply --validate=strict` does: the API
    server prunes them silently otherwise, so a misspelt field would go unnoticed."""
    if isinstance(schema, dict):
        out = {key: strict_schema(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    return schema


def crd_validator(crd_file: Path, api_version: str, kind: str) -> Draft7Validator:
    """A strict validator of ``kind`` at ``api_version`` (``group/version``), from its CRD's file."""
    group, version = api_version.split("/")
    crd = yaml.safe_load(crd_file.read_text())
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return Draft7Validator(strict_schema(served["schema"]["openAPIV3Schema"]))


def schema_errors(validator: Draft7Validator, manifest: Manifest) -> list[str]:
    """``path: message`` of each way ``manifest`` breaks the schema (none: valid)."""
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Manifest]]:
    """Variant name → rendered manifests."""
    return {name: render(values_files=files) for name, files in VARIANTS.items()}


@pytest.fixture(scope="session")
def default_manifests(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return rendered["default"]
