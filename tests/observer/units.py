"""Helpers of the observer's unit tests (no broker, no search server): settings, consumed messages, and
window documents, which need no settings at all."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Message

from streamwatch_common.visit_record import DEFAULT_REQUIRED_FIELDS
from streamwatch_observer.documents import Document, Origin, reported_fields, window_document
from streamwatch_observer.settings import ObserverSettings
from streamwatch_observer.window import ClosedWindow

ORIGIN = Origin(job="passthrough", topic="processed_visits", source_topic="visits", replica="r0")
REQUIRED = DEFAULT_REQUIRED_FIELDS


def unit_settings(**overrides: Any) -> ObserverSettings:
    """Observer settings whose broker and search addresses are never contacted."""
    fields = {
        "kafka_bootstrap_servers": "127.0.0.1:9",
        "elasticsearch_url": "http://127.0.0.1:9",
        "replica": "r0",
    }
    return ObserverSettings.model_validate({**fields, **overrides})


def message(partition: int, offset: int, value: bytes | None, ts_ms: int = 1_763_800_000_000) -> Message:
    """A consumed record as the client hands it over."""
    return Message(topic="t", partition=partition, offset=offset, value=value, timestamp=(1, ts_ms))


def document(window: ClosedWindow, latest: dict[int, int] | None = None, max_fields: int = 100) -> Document:
    """The window's document as the writer makes it (default required fields and cap)."""
    return window_document(ORIGIN, window, reported_fields(window, REQUIRED, max_fields), latest or {})
