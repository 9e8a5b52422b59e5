"""Observer-at-scale helpers: a producer thread that keeps data flowing, replica ownership from the logs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from observer.conftest import (
    ObserverFactory,
    observers,  # noqa: F401 - the factory fixture, shared
    visit,
)

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.services import ServiceProcess


class FlowingProducer:
    """Produces visits round-robin over the partitions of a topic at a modest rate until stopped.

    ``produced`` counts acknowledged records per partition, so the expected end offsets are exact."""

    def __init__(self, kafka: KafkaBroker, topic: str, partitions: int, rate: float) -> None:
        self.kafka = kafka
        self.topic = topic
        self.partitions = partitions
        self.rate = rate
        self.produced = dict.fromkeys(range(partitions), 0)
        self.failed = 0
        self._pause = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flowing-producer", daemon=True)
        self._i = 0

    def start(self) -> FlowingProducer:
        self._thread.start()
        return self

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            self.produced[msg.partition()] += 1
        else:
            self.failed += 1

    def _run(self) -> None:
        producer = self.kafka.producer()
        while not self._stop.is_set():
            if self._pause.is_set():
                producer.flush(30)
                time.sleep(0.05)
                continue
            partition = self._i % self.partitions
            producer.produce(
                self.topic, value=visit(self._i), partition=partition, on_delivery=self._delivered
            )
            self._i += 1
            producer.poll(0)
            time.sleep(1.0 / self.rate)
        producer.flush(30)

    def pause(self) -> None:
        """Stop sending and wait until everything sent is acknowledged."""
        self._pause.set()
        time.sleep(0.3)

    def resume(self, kafka: KafkaBroker | None = None) -> None:
        self._pause.clear()

    def stop(self) -> dict[int, int]:
        self._stop.set()
        self._thread.join(timeout=40)
        return dict(self.produced)


@pytest.fixture
def flow(kafka: KafkaBroker) -> Iterator[list[FlowingProducer]]:
    """Producers started by a test; stopped at its end whatever happens."""
    started: list[FlowingProducer] = []
    yield started
    for producer in started:
        producer.stop()


def owned(process: ServiceProcess) -> list[int]:
    """Partitions a replica owns according to its latest ``assignment_changed`` line."""
    events = process.events("assignment_changed")
    return list(events[-1]["owned"]) if events else []


def settled(replicas: list[ServiceProcess], partitions: int) -> bool:
    """Every partition owned by exactly one of the running replicas, all of them past their first join."""
    if not all(process.events("assignment_changed") for process in replicas):
        return False
    owners = [p for process in replicas for p in owned(process)]
    return sorted(owners) == list(range(partitions))


def window_times(processes: list[ServiceProcess]) -> list[float]:
    """Epoch seconds of every ``window_written`` line of the given processes, sorted."""
    from datetime import datetime

    stamps = [
        datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
        for process in processes
        for e in process.events("window_written")
    ]
    return sorted(stamps)


__all__ = ["FlowingProducer", "ObserverFactory", "owned", "settled", "window_times"]
