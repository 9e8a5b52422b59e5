"""Lag evaluation from a checkpoint the real Spark passthrough wrote: STALL with a backlog the stopped job
never commits, REWIND when that checkpoint is replaced by a copy taken earlier in the run, then STOP while
records keep arriving; as the metric, the lag documents' field and the Prometheus alerts."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from observer.conftest import ObserverFactory, start_generator, start_passthrough, visit

from streamwatch_dev.chart import render_rule_files
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Prometheus
from streamwatch_dev.services import metric_value
from streamwatch_dev.spark import newest_committed

pytestmark = pytest.mark.spark

TOTAL = 300
BACKLOG = 20  # produced to partition 1 after the passthrough stopped: a backlog nobody commits
WINDOW = "5"


def test_stall_rewind_and_stop_from_the_passthroughs_checkpoint(
    kafka: KafkaBroker, observers: ObserverFactory, output_dir: Path, processes: list[Any]
) -> None:
    observers.topics(partitions=2)
    passthrough = start_passthrough(kafka, observers, output_dir / "passthrough.log", processes)
    generator = start_generator(
        kafka,
        observers.source,
        output_dir / "generator.log",
        processes,
        GENERATOR_TOTAL=str(TOTAL),
        GENERATOR_RATE="30",
        GENERATOR_SEED="11",
    )
    # The "older copy": the checkpoint as it was after the passthrough's first committed records.
    wait_until(
        lambda: sum(newest_committed(observers.checkpoint, observers.source).values()) > 0,
        120,
        what="a first committed batch",
    )
    backup = output_dir / "checkpoint-copy"
    shutil.copytree(observers.checkpoint, backup, ignore=shutil.ignore_patterns("*.tmp", ".*"))
    assert generator.wait(120) == 0
    ends = kafka.end_offsets(observers.source)
    assert sum(ends.values()) == TOTAL
    wait_until(
        lambda: newest_committed(observers.checkpoint, observers.source) == ends,
        120,
        what="the passthrough committing every generated record",
    )
    passthrough.signal(signal.SIGTERM)
    assert passthrough.wait(60) == 0
    older = newest_committed(backup, observers.source)
    assert all(older.get(p, 0) < ends[p] for p in ends), (older, ends)
    kafka.produce(observers.source, [(None, visit(9000 + i)) for i in range(BACKLOG)], partition=1)

    observer = observers.start(
        OBSERVER_WINDOW_SECONDS="3",
        OBSERVER_PROFILE_ENABLED="false",
        OBSERVER_LAG_EVALUATION_WINDOW_SECONDS=WINDOW,
    )
    rules = [
        p
        for p in render_rule_files(output_dir / "rules", {"alerts.lagEvaluation.for": "2s"})
        if p.name == "observer.rules.yaml"
    ]
    prom = Prometheus.start(output_dir / "prometheus", rules, targets=[f"127.0.0.1:{observer.ops_port}"])
    processes.append(prom)

    def evaluation(partition: int) -> str | None:
        text = observer.metrics()
        for status in ("ok", "warn", "stall", "stop", "rewind"):
            labels = {"topic": observers.source, "partition": str(partition), "status": status}
            if metric_value(text, "observer_lag_evaluation", **labels) == 1:
                return status
        return None

    def documents(status: str) -> list[dict[str, Any]]:
        return [d for d in observers.docs("lag") if d.get("evaluation") == status]

    # STALL: partition 1 keeps its backlog, its committed offset does not move, nothing new arrives.
    started = time.monotonic()
    wait_until(lambda: evaluation(1) == "stall", 60, what="partition 1 judged stalled")
    stalled_after = time.monotonic() - started
    assert stalled_after >= float(WINDOW) - 1, "a stall is judged over a complete window only"
    assert evaluation(0) == "ok", "partition 0 has no lag"
    wait_until(lambda: documents("stall"), 30, what="a lag document with evaluation stall")
    assert {d["partition"] for d in documents("stall")} == {1}
    wait_until(
        lambda: prom.alert_state("passthrough stalled") == "firing", 60, interval=0.5, what="stall alert"
    )

    # REWIND: the checkpoint is replaced by the copy taken early in the run.
    shutil.rmtree(observers.checkpoint)
    shutil.copytree(backup, observers.checkpoint)
    wait_until(lambda: evaluation(0) == evaluation(1) == "rewind", 30, what="both partitions rewound")
    wait_until(lambda: {d["partition"] for d in documents("rewind")} == {0, 1}, 30, what="rewind documents")
    wait_until(
        lambda: prom.alert_state("passthrough rewound") == "firing", 60, interval=0.5, what="rewind alert"
    )

    # STOP: records keep arriving on partition 0 while no batch is committed any more.
    deadline = time.monotonic() + 60
    n = 0
    while evaluation(0) != "stop":
        assert time.monotonic() < deadline, f"partition 0 never judged stopped (last: {evaluation(0)})"
        kafka.produce(observers.source, [(None, visit(20000 + n))], partition=0)
        n += 1
        time.sleep(0.5)
    # No data arrives on partition 1: stalled again once the rewind left its window, not stopped.
    wait_until(lambda: evaluation(1) == "stall", 15, what="partition 1 stalled again")
    wait_until(lambda: documents("stop"), 30, what="a lag document with evaluation stop")
