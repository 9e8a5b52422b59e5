"""Helpers of the observer's unit tests (no broker, no search server): settings and consumed messages."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Message

from streamwatch_observer.settings import ObserverSettings


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
