"""Completeness end to end: the real passthrough pushes the end offset it has read per partition, the real
observer exports the offset it has counted of the copy, and Prometheus evaluates the chart's recording
rule over both. The gap stays 0 while the observer keeps up; once every observer is stopped it grows and
"observer incomplete" fires."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from observer.conftest import ObserverFactory, start_generator, start_passthrough

from streamwatch_dev.chart import render_rule_files
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Prometheus, Pushgateway

pytestmark = pytest.mark.spark

GAP = "streamwatch:observer_completeness_gap_records"
ALERT = "observer incomplete"
# Not the chart's default job name: the rule must follow the value the passthrough is given.
PUSH_JOB = "passthrough-completeness"
# The observer closes a window every 2 s and the passthrough triggers every 0.5 s, so what was read
# 20 s ago has long been counted unless the observer is really behind.
SETTLE = "20s"
STEADY_SECONDS = 20


def per_partition(prom: Prometheus, expr: str) -> dict[str, float]:
    return {r["metric"]["partition"]: float(r["value"][1]) for r in prom.query(expr)}


def test_gap_is_zero_while_the_observer_keeps_up_and_grows_once_it_stops(
    kafka: KafkaBroker, observers: ObserverFactory, output_dir: Path, processes: list[Any]
) -> None:
    observers.topics(partitions=2)
    gateway = Pushgateway.start(output_dir / "pushgateway")
    processes.append(gateway)
    start_passthrough(
        kafka,
        observers,
        output_dir / "passthrough.log",
        processes,
        PASSTHROUGH_PUSHGATEWAY_URL=gateway.url,
        PASSTHROUGH_PUSH_JOB=PUSH_JOB,
    )
    start_generator(
        kafka,
        observers.source,
        output_dir / "generator.log",
        processes,
        GENERATOR_RATE="20",
        GENERATOR_SEED="5",
    )
    observer = observers.start(OBSERVER_PROFILE_ENABLED="false", OBSERVER_WINDOW_SECONDS="2")
    rules = [
        p
        for p in render_rule_files(
            output_dir / "rules",
            {
                "passthrough.settings.push_job": PUSH_JOB,
                "alerts.completeness.settle": SETTLE,
                "alerts.completeness.for": "5s",
            },
        )
        if p.name == "observer.rules.yaml"
    ]
    prom = Prometheus.start(
        output_dir / "prometheus", rules, pushgateway=gateway.url, targets=[f"127.0.0.1:{observer.ops_port}"]
    )
    processes.append(prom)

    # Steady state: the passthrough's reading as of SETTLE ago covers records on both partitions (so a 0
    # is not an empty comparison), the gap series exists for both, and it stays 0 over STEADY_SPAN.
    settled_read = (
        f'max by (partition) (streaming_batch_source_end_offset{{job="{PUSH_JOB}"}} offset {SETTLE})'
    )
    wait_until(
        lambda: (read := per_partition(prom, settled_read)).keys() == {"0", "1"} and min(read.values()) > 0,
        180,
        what="the passthrough's settled reading on both partitions",
    )
    wait_until(lambda: per_partition(prom, GAP) == {"0": 0.0, "1": 0.0}, 60, what="a complete observer")
    complete_since = time.monotonic()
    steady_from = per_partition(prom, settled_read)
    wait_until(
        lambda: (
            time.monotonic() - complete_since > STEADY_SECONDS + 1
            and min(per_partition(prom, settled_read).values()) > max(steady_from.values())
        ),
        STEADY_SECONDS + 60,
        what="a span of steady state with the passthrough reading on",
    )
    worst = per_partition(prom, f"max_over_time({GAP}[{STEADY_SECONDS}s])")
    assert worst == {"0": 0.0, "1": 0.0}, f"a gap while the observer kept up: {worst}"
    assert prom.alerts(ALERT) == []

    # Every observer stops: what the passthrough reads from now on is missing, and the alert fires.
    observer.stop()
    wait_until(lambda: prom.alert_state(ALERT) == "firing", 120, interval=0.5, what="alert firing")
    first = per_partition(prom, GAP)
    assert min(first.values()) > 0, first
    wait_until(
        lambda: sum(per_partition(prom, GAP).values()) > sum(first.values()),
        60,
        what="the gap growing while the generator runs",
    )
