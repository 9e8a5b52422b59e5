"""The lag alert end to end: Prometheus scrapes the observer's /metrics and evaluates the chart's rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from observer.conftest import ObserverFactory, visit, write_checkpoint

from streamwatch_dev.chart import render_rule_files
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Prometheus

LAG = "passthrough lag"


@pytest.fixture
def prometheus_for() -> Iterator[list[Prometheus]]:
    started: list[Prometheus] = []
    yield started
    for prom in started:
        prom.stop()


def test_lag_alert_goes_pending_then_firing_then_resolves(
    kafka: KafkaBroker, observers: ObserverFactory, output_dir: Path, prometheus_for: list[Prometheus]
) -> None:
    observers.topics(partitions=2)
    kafka.produce(observers.source, [(None, visit(i)) for i in range(5)], partition=0)
    kafka.produce(observers.source, [(None, visit(100 + i)) for i in range(40)], partition=1)
    write_checkpoint(observers.checkpoint, 0, {0: 5, 1: 0}, observers.source)  # p1 lags by 40
    observer = observers.start(OBSERVER_PROFILE_ENABLED="false")
    rules = [
        p
        for p in render_rule_files(output_dir / "rules", {"alerts.lag.for": "5s"})
        if p.name == "observer.rules.yaml"
    ]
    prom = Prometheus.start(output_dir / "prometheus", rules, targets=[f"127.0.0.1:{observer.ops_port}"])
    prometheus_for.append(prom)

    wait_until(lambda: prom.alert_state(LAG) == "pending", 60, interval=0.5, what="alert pending")
    (pending,) = prom.alerts(LAG)
    assert pending["labels"]["partition"] == "1"
    assert pending["labels"]["topic"] == observers.source
    assert float(pending["value"]) == 40
    wait_until(lambda: prom.alert_state(LAG) == "firing", 30, interval=0.5, what="alert firing")
    assert [a["labels"]["partition"] for a in prom.alerts(LAG)] == ["1"]

    # The passthrough catches up: the next committed batch covers everything.
    write_checkpoint(observers.checkpoint, 1, {0: 5, 1: 40}, observers.source)
    wait_until(lambda: prom.alert_state(LAG) == "inactive", 30, interval=0.5, what="alert resolved")
    result = prom.query(f'observer_lag_offsets{{topic="{observers.source}"}}')
    assert {r["metric"]["partition"]: float(r["value"][1]) for r in result} == {"0": 0.0, "1": 0.0}
