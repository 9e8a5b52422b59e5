"""The options of the ``streamwatch_kafka`` source (:mod:`streamwatch_common.spark.kafka_source`), parsed
and checked once on the driver: a bad option fails the query at start with a message naming it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamwatch_common.errors import SourceError
from streamwatch_common.spark.batch_metrics import Offsets
from streamwatch_common.spark.kafka_broker_wait import BROKER_WAIT_S

EARLIEST = -2
LATEST = -1
# Spark's own Kafka source retries a failed offset look-up this many times; here each look-up waits out
# an unreachable broker in one loop instead, so the options would mean something else and are refused.
_SPARK_ONLY = ("fetchOffset.numRetries", "fetchOffset.retryIntervalMs")


@dataclass(frozen=True)
class SourceOptions:
    """What the reader needs from its options (Spark's Kafka option names, matched case-insensitively)."""

    config: dict[str, Any]
    topics: list[str]
    starting: str | Offsets
    max_rows: int | None
    fail_on_data_loss: bool

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> SourceOptions:
        lowered = {k.lower(): v for k, v in options.items()}
        for spark_only in _SPARK_ONLY:
            if spark_only.lower() in lowered:
                raise SourceError(
                    f"option {spark_only} is for Spark's own Kafka source: this one waits out a broker for"
                    f" {BROKER_WAIT_S:.0f} s on every offset look-up"
                )
        topics = [t.strip() for t in lowered.get("subscribe", "").split(",") if t.strip()]
        if not topics:
            raise SourceError("option subscribe (comma-separated topics) is required")
        max_rows = lowered.get("maxoffsetspertrigger")
        limit = int(max_rows) if max_rows not in (None, "", "0") else None
        if limit is not None and limit < 0:
            raise SourceError(f"maxOffsetsPerTrigger must be positive: {max_rows!r}")
        return cls(
            config=client_config(lowered),
            topics=topics,
            starting=parse_starting_offsets(lowered.get("startingoffsets", "earliest")),
            max_rows=limit,
            fail_on_data_loss=lowered.get("failondataloss", "true").lower() != "false",
        )


def client_config(options: Mapping[str, str]) -> dict[str, Any]:
    """librdkafka configuration from the source options (``kafka.*`` and the ``kafkaProperties`` JSON)."""
    config: dict[str, Any] = {}
    raw = options.get("kafkaproperties") or options.get("kafkaProperties")
    if raw:
        extra = json.loads(raw)
        if not isinstance(extra, dict):
            raise SourceError("option kafkaProperties must be a JSON object")
        config.update(extra)
    for key, value in options.items():
        if key.lower().startswith("kafka."):
            config[key[len("kafka.") :]] = value
    if not config.get("bootstrap.servers"):
        raise SourceError("option kafka.bootstrap.servers is required")
    return config


def parse_starting_offsets(value: str) -> str | Offsets:
    """``earliest``, ``latest`` or the JSON offsets (partition keys as strings)."""
    text = value.strip()
    if text.lower() in ("earliest", "latest"):
        return text.lower()
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise SourceError(f"startingOffsets: not earliest, latest or JSON: {value!r}") from exc
    if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
        raise SourceError(f'startingOffsets JSON must look like {{"topic": {{"0": 42}}}}: {value!r}')
    return {str(t): {str(p): int(o) for p, o in parts.items()} for t, parts in parsed.items()}
