"""Visit records for the visits-writer tests, shaped like the generator's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa


def visit(n: int, **overrides: Any) -> dict[str, Any]:
    """A complete visit like the generator's; ``overrides`` replace top-level fields."""
    record: dict[str, Any] = {
        "visit_id": f"v-{n}",
        "event_time": datetime(2026, 1, 1, 0, 0, n % 60, tzinfo=UTC).isoformat(timespec="milliseconds"),
        "user_id": f"user_{n % 7}",
        "keep_private": n % 2 == 0,
        "page": f"article_{n % 5}.html",
        "context": {
            "referral": "Google Search",
            "ad_id": None,
            "user": {
                "ip": "10.0.0.1",
                "login": f"login_{n % 7}",
                "connected_since": "2025-12-31T00:00:00.000+00:00",
            },
            "technical": {
                "browser": "Firefox",
                "browser_version": "131.0",
                "network_type": "Wi-Fi",
                "device_type": "pc",
                "device_version": "Windows 11",
            },
        },
    }
    record.update(overrides)
    return record


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


def kafka_table(values: list[bytes | None], partition: int = 0, first_offset: int = 0) -> pa.Table:
    """Kafka records as Spark hands them to ``foreachBatch`` on the Python path (``toArrow()``)."""
    n = len(values)
    return pa.table(
        {
            "key": pa.array([b"k"] * n, pa.binary()),
            "value": pa.array(values, pa.binary()),
            "topic": ["visits"] * n,
            "partition": pa.array([partition] * n, pa.int32()),
            "offset": pa.array(range(first_offset, first_offset + n), pa.int64()),
            "timestamp": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
        }
    )
