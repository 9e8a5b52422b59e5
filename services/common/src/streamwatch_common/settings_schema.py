"""The chart's schema of each service's ``settings`` map, generated from the service's settings model.

The chart turns every key of ``<component>.settings`` into ``<PREFIX><KEY>`` (upper-cased), so the keys it
may take are the model's field names. Left out are the fields the service reads under a shared unprefixed
name (``LOG_LEVEL``, ``KAFKA_*``, ``ELASTICSEARCH_*``: the chart sets those from its own values, and a
prefixed copy would be read by nobody), secrets (they come from Secrets, never from values) and the fields
the chart wires from its other values (:data:`CHART_WIRED`). Every other key is refused, so a typo fails
at ``helm template`` instead of leaving the default in force.

Values reach the service as environment text: ``--set`` gives a decimal as a string and a values file
gives numbers, so numbers and booleans are taken as such or as a string of that form, and ``null`` means
unset (the chart renders nothing, the service keeps its default).

Only the ``settings`` objects of ``values.schema.json`` are rewritten, found by position in the text, so
everything around them stays byte for byte as it was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

# Settings the chart sets itself from its other values (templates/_wiring.tpl), by service: refused under
# `settings`, so each has one place to be set and no container names a variable twice. tests/chart
# compares this with the rendered environment.
CHART_WIRED: Mapping[str, Mapping[str, str]] = {
    "generator": {"topic": "kafka.topics.visits.name"},
    "visits-writer": {
        "source_topic": "kafka.topics.visits.name",
        "checkpoint_path": "visitsWriter.storage.mountPath, visitsWriter.storage.url",
        "visits_table_path": "visitsWriter.storage.mountPath, visitsWriter.storage.url",
        "dead_letter_table_path": "visitsWriter.storage.mountPath, visitsWriter.storage.url",
        "pushgateway_url": "pushgateway.enabled, pushgateway.external.url",
        "executors": "visitsWriter.spark.executors.count",
        "executors_max": "visitsWriter.spark.executors.max",
        "executor_cores": "visitsWriter.spark.executors.cores",
        "executor_memory": "visitsWriter.spark.executors.memory",
        "executor_cpu_request": "visitsWriter.spark.executors.cpuRequest",
        "executor_image": "image",
        "executor_pod_template": "visitsWriter.spark.executors",
        "kubernetes_namespace": "the release's namespace",
        "driver_service": "visitsWriter.spark.executors",
        "driver_pod_name": "the pod's name",
    },
    "passthrough": {
        "source_topic": "kafka.topics.visits.name",
        "target_topic": "kafka.topics.processedVisits.name",
        "checkpoint_path": "passthrough.checkpoint.mountPath",
        "pushgateway_url": "pushgateway.enabled, pushgateway.external.url",
        "executors": "passthrough.spark.executors.count",
        "executors_max": "passthrough.spark.executors.max",
        "executor_cores": "passthrough.spark.executors.cores",
        "executor_memory": "passthrough.spark.executors.memory",
        "executor_cpu_request": "passthrough.spark.executors.cpuRequest",
        "executor_image": "image",
        "executor_pod_template": "passthrough.spark.executors",
        "kubernetes_namespace": "the release's namespace",
        "driver_service": "passthrough.spark.executors",
        "driver_pod_name": "the pod's name",
    },
    "observer": {
        "topic": "kafka.topics.processedVisits.name",
        "source_topic": "kafka.topics.visits.name",
        "checkpoint_path": "passthrough.checkpoint.mountPath",
        "watched_jobs": "observer.watchedJobs",
        "profile_dir": "the pod's /tmp volume",
        "profile_publisher_url": "profilePublisher.enabled, profilePublisher.port",
        "profile_publisher_token": "profilePublisher.token",
    },
    "profile-publisher": {
        "port": "profilePublisher.port",
        "store_dir": "profilePublisher.storage.mountPath",
        "public_url": "profilePublisher.publicUrl",
        "token": "profilePublisher.token",
    },
}

# What a string must look like where the model wants a number or a boolean (pydantic's lax forms).
_INTEGER = r"^[+-]?[0-9]+$"
_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_BOOLEAN = r"(?i)^(true|false|t|f|yes|no|y|n|on|off|1|0)$"
# Keywords of pydantic's JSON schema that carry over as they are (bounds apply to numbers only, lengths
# and patterns to strings only, so the string forms above are not held to them).
_KEPT = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern")


class SettingsSchemaError(Exception):
    """A settings field whose type the chart's schema cannot express, or a schema file without the spot."""


def values_key(service: str) -> str:
    """The chart's values key of a service: ``visits-writer`` → ``visitsWriter`` (as its valuesKey helper)."""
    first, *rest = service.split("-")
    return first + "".join(part.title() for part in rest)


def _is_secret(field: FieldInfo) -> bool:
    return "SecretStr" in str(field.annotation)  # SecretStr itself or inside Optional


def chart_settable(service: str, settings_cls: type[BaseSettings]) -> dict[str, FieldInfo]:
    """The fields a user may set under ``<component>.settings``, in the model's order."""
    wired = CHART_WIRED.get(service, {})
    return {
        name: field
        for name, field in settings_cls.model_fields.items()
        if field.validation_alias is None and not _is_secret(field) and name not in wired
    }


def _type(schema: dict[str, Any], where: str) -> dict[str, Any]:
    """The chart's form of one (non-null) pydantic JSON schema."""
    if "enum" in schema:
        return {"enum": list(schema["enum"])}
    kind = schema.get("type")
    kept = {key: schema[key] for key in _KEPT if key in schema}
    if kind == "string":
        # A format (date-time, uri, path) is left to the service, which accepts more forms than the name.
        return {"type": ["string", "number"], **kept}
    if kind == "integer":
        return {"type": ["integer", "string"], **kept, "pattern": _INTEGER}
    if kind == "number":
        return {"type": ["number", "string"], **kept, "pattern": _NUMBER}
    if kind == "boolean":
        return {"type": ["boolean", "string"], "pattern": _BOOLEAN}
    if kind == "array":  # the chart joins a list with commas, the service splits a comma list
        items = _type(schema["items"], where)
        out: dict[str, Any] = {"type": ["array", "string"], "items": items}
        if "enum" in items:
            word = "|".join(re.escape(str(v)) for v in items["enum"])
            out["pattern"] = rf"^ *({word})( *, *({word}))* *$"
        return out | {key: schema[key] for key in ("minItems", "maxItems") if key in schema}
    if kind == "object":  # the chart renders a map as JSON
        values = schema.get("additionalProperties", {})
        return {"type": ["object", "string"], "additionalProperties": values}
    raise SettingsSchemaError(f"{where}: no chart schema for {schema}")


def _property(schema: dict[str, Any], where: str) -> dict[str, Any]:
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    if len(branches) != 1:
        raise SettingsSchemaError(f"{where}: no chart schema for a union {schema}")
    out = _type(branches[0], where)
    # null: nothing is rendered and the service keeps its default (Helm's way to unset a value).
    if "enum" in out:
        return {**out, "enum": [*out["enum"], None]}
    return {"type": [*out["type"], "null"], **{k: v for k, v in out.items() if k != "type"}}


def settings_schema(service: str, settings_cls: type[BaseSettings], description: str) -> dict[str, Any]:
    """The JSON schema of ``<component>.settings`` for one service."""
    model = settings_cls.model_json_schema()
    properties = {}
    for name, field in chart_settable(service, settings_cls).items():
        where = f"{settings_cls.__name__}.{name}"
        properties[name] = {
            "description": field.description or "",
            **_property(model["properties"][name], where),
        }
    return {
        "description": description,
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


# --- finding and replacing one value of a JSON text, leaving the rest as it is ---------------------------
_DECODER = json.JSONDecoder()
_BLANK = re.compile(r"[ \t\r\n]*")


def _skip(text: str, at: int) -> int:
    match = _BLANK.match(text, at)
    return match.end() if match else at


def _member(text: str, start: int, key: str) -> tuple[int, int]:
    """Start and end of the value of ``key`` in the JSON object whose ``{`` is at ``start``."""
    if text[start] != "{":
        raise SettingsSchemaError(f"no object at character {start}")
    at = _skip(text, start + 1)
    while text[at] != "}":
        name, at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        if text[at] != ":":
            raise SettingsSchemaError(f"malformed object at character {at}")
        value_start = _skip(text, at + 1)
        _value, value_end = _DECODER.raw_decode(text, value_start)
        if name == key:
            return value_start, value_end
        at = _skip(text, value_end)
        if text[at] == ",":
            at = _skip(text, at + 1)
    raise KeyError(key)


def _span(text: str, path: list[str]) -> tuple[int, int]:
    start, end = _skip(text, 0), len(text)
    for key in path:
        try:
            start, end = _member(text, start, key)
        except KeyError:
            raise SettingsSchemaError(f"values.schema.json has no {'.'.join(path)}") from None
    return start, end


def rewrite_schema(text: str, services: Mapping[str, type[BaseSettings]]) -> str:
    """``values.schema.json`` with each service's ``settings`` object generated from its model; each keeps
    the description written there, and every character outside those objects stays as it was."""
    for service, settings_cls in services.items():
        start, end = _span(text, ["properties", values_key(service), "properties", "settings"])
        description = json.loads(text[start:end]).get("description", "")
        line_start = text.rfind("\n", 0, start) + 1
        indent = " " * (len(text[line_start:start]) - len(text[line_start:start].lstrip(" ")))
        generated = json.dumps(
            settings_schema(service, settings_cls, description), indent=2, ensure_ascii=False
        )
        text = text[:start] + generated.replace("\n", "\n" + indent) + text[end:]
    return text
