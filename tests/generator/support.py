"""Helpers shared by the generator tests: read a topic back, read a run's summary, check log lines."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.services import ServiceProcess

StartGenerator = Callable[..., ServiceProcess]


@dataclass(frozen=True)
class Row:
    """One record as a consumer read it."""

    partition: int
    offset: int
    key: bytes
    value: bytes


def read_rows(kafka: KafkaBroker, topic: str) -> list[Row]:
    """Every record of the topic, ordered by partition then offset.

    Reads until the topic has been quiet for 3 s rather than up to an expected count, so a record the
    generator did not count shows up as a surplus instead of going unnoticed.
    """
    messages = kafka.read_all(topic, idle_timeout=3.0)
    rows = [Row(m.partition() or 0, m.offset() or 0, m.key() or b"", m.value() or b"") for m in messages]
    return sorted(rows, key=lambda r: (r.partition, r.offset))


def run_to_total(
    kafka: KafkaBroker, start_generator: StartGenerator, partitions: int, total: int, **settings: str
) -> tuple[ServiceProcess, list[Row]]:
    """The generator run at full speed to ``total`` records on a fresh topic of ``partitions`` (it exits 0
    within 120 s), and every record of that topic as a consumer reads it back."""
    topic = kafka.create_topic(partitions=partitions)
    # Not waiting for readiness: it runs to its total and exits, maybe before a readiness probe.
    process = start_generator(
        topic, wait_ready=False, GENERATOR_RATE="0", GENERATOR_TOTAL=str(total), **settings
    )
    assert process.wait(120) == 0
    return process, read_rows(kafka, topic)


def summary(process: ServiceProcess) -> dict[str, Any]:
    """The single ``generator_summary`` event of a finished run."""
    (event,) = process.events("generator_summary")
    return event


def assert_every_line_is_json(log_path: Path, service: str = "generator") -> int:
    """Each line of the log parses as a JSON object with the required keys; returns the line count."""
    lines = log_path.read_text().splitlines()
    assert lines, f"{log_path} is empty"
    for line in lines:
        doc = json.loads(line)
        assert isinstance(doc, dict), line
        missing = {"ts", "level", "service", "event"} - doc.keys()
        assert not missing, f"{missing} missing in {line}"
        assert doc["service"] == service
        assert re.fullmatch(r"[a-z][a-z0-9_]*", doc["event"]), f"event is not snake_case: {line}"
    return len(lines)
