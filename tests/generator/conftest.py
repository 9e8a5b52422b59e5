"""Fixtures for generator tests: start the real console script against the session broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from generator.support import StartGenerator

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.services import ServiceProcess, service_env


@pytest.fixture
def start_generator(kafka: KafkaBroker, output_dir: Path) -> Iterator[StartGenerator]:
    """Factory: ``start_generator(topic, GENERATOR_TOTAL="100", ...)`` starts the generator (not waiting
    for readiness); every process started is stopped at the end of the test."""
    started: list[ServiceProcess] = []

    def start(topic: str, wait_ready: bool = True, **env: str) -> ServiceProcess:
        full_env = service_env(**{**kafka.env(), "GENERATOR_TOPIC": topic, **env})
        log = output_dir / f"generator-{len(started)}.log"
        process = ServiceProcess("streamwatch-generator", log, full_env)
        started.append(process)
        if wait_ready:
            process.start_ready()
        else:
            process.start()
        return process

    yield start
    for process in started:
        process.stop()
