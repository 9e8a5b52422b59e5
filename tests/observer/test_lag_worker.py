"""The lag worker runs one measurement at a time off the consume loop's thread and hands each back once;
a measurement that raised raises in the thread that collects it."""

from __future__ import annotations

import threading

import pytest

from streamwatch_observer.lag_worker import LagRound, LagWorker


def test_a_measurement_is_handed_back_once_after_it_finished() -> None:
    release = threading.Event()
    threads: list[str] = []

    def measure(partitions: list[int], bucket: int) -> LagRound:
        threads.append(threading.current_thread().name)
        release.wait(10)
        return LagRound(bucket, [], [], len(partitions))

    worker = LagWorker(measure)
    try:
        assert worker.done() is None and not worker.running  # nothing asked yet
        worker.submit([0, 1], 7)
        assert worker.running and worker.done() is None  # still measuring
        with pytest.raises(RuntimeError, match="still in flight"):
            worker.submit([0], 8)
        release.set()
        finished = worker.wait()
        assert finished is not None and finished.bucket == 7 and finished.observed_partitions == 2
        assert worker.done() is None and not worker.running  # handed back once
        assert threads and threads[0] != threading.current_thread().name
    finally:
        worker.close()


def test_a_measurement_that_raised_raises_where_it_is_collected() -> None:
    def measure(partitions: list[int], bucket: int) -> LagRound:
        raise ValueError("checkpoint store said no")

    worker = LagWorker(measure)
    try:
        worker.submit([0], 1)
        with pytest.raises(ValueError, match="store said no"):
            worker.wait()
        assert not worker.running
    finally:
        worker.close()
