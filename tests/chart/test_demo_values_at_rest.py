"""``make demo`` at rest is healthy: at the demo's own rate and trigger (``demo-values.yaml`` of
streamwatch_dev, rendered through the chart as the demo renders it) every partition's passthrough lag stays
under the lag alert's threshold over a minute of steady state (a dozen lag probes of every partition at the
demo's interval), so a newcomer sees no alert pending that means nothing.
The real generator, passthrough, observer and profile publisher run as the demo starts them."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml

from streamwatch_dev.chart import CHART, render
from streamwatch_dev.demo import DEMO_VALUES
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import free_port, wait_until
from streamwatch_dev.prometheus import Pushgateway
from streamwatch_dev.search import SearchServer
from streamwatch_dev.services import ServiceProcess, metric_value, service_env
from streamwatch_dev.wiring import infrastructure_hosts, local_container
from streamwatch_dev.workloads import Container, by_kind, service_containers

STEADY_SECONDS = 60
# The first batches take in what arrived while Spark started, and the first windows are short of records.
SETTLE_SECONDS = 30


def _lag_threshold() -> float:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    demo = yaml.safe_load(DEMO_VALUES.read_text())
    assert "alerts" not in demo, "the demo's threshold is the chart's: the test reads it there"
    return float(values["alerts"]["lag"]["thresholdOffsets"])


@pytest.mark.spark
def test_every_partitions_lag_stays_under_the_alert_threshold_at_the_demos_rate_and_trigger(
    kafka: KafkaBroker, pushgateway: Pushgateway, search: SearchServer, output_dir: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    visits = f"visits-{run}"
    manifests = render(
        {
            # unique names on the shared harness components; everything else is the demo's
            "kafka.topics.visits.name": visits,
            "kafka.topics.processedVisits.name": f"processed_visits-{run}",
            "observer.settings.group_id": f"observer-{run}",
        },
        values_files=[DEMO_VALUES],
    )
    partitions = set()
    for topic in by_kind(manifests, "KafkaTopic"):
        kafka.create_topic(topic["spec"]["topicName"], partitions=topic["spec"]["partitions"])
        partitions = {str(p) for p in range(topic["spec"]["partitions"])}
    threshold = _lag_threshold()
    publisher_port = free_port()
    hosts = {
        **infrastructure_hosts(
            manifests, kafka.bootstrap, {"pushgateway": pushgateway.url, "elasticsearch": search.url}
        ),
        "http://sw-streamwatch-profile-publisher:8000": f"http://127.0.0.1:{publisher_port}",
    }
    started: list[ServiceProcess] = []

    def start(c: Container, extra: dict[str, str] | None = None) -> ServiceProcess:
        local = local_container(c, manifests, hosts, output_dir)
        env = service_env(**{**local.env, **(extra or {})})
        process = ServiceProcess(local.command[0], output_dir / f"{local.name}.log", env, local.command[1:])
        started.append(process.start_ready(timeout=120))
        return process

    try:
        (publisher,) = service_containers(manifests, "profile-publisher")
        start(publisher, {"OPS_PORT": str(publisher_port), "PROFILE_PUBLISHER_PORT": str(publisher_port)})
        (passthrough,) = service_containers(manifests, "passthrough")
        start(passthrough)
        (observer_container,) = service_containers(manifests, "observer")
        observer = start(observer_container)
        (generator,) = service_containers(manifests, "generator")
        start(generator)

        def lags() -> dict[str, float] | None:
            text = observer.metrics()
            found = {
                p: metric_value(text, "observer_lag_offsets", topic=visits, partition=p) for p in partitions
            }
            measured = {p: v for p, v in found.items() if v is not None}
            return measured if len(measured) == len(partitions) else None

        wait_until(lags, 240, interval=1, what="the observer's lag of every partition")
        time.sleep(SETTLE_SECONDS)
        produced_before = kafka.end_offsets(visits)
        worst = dict.fromkeys(partitions, 0.0)
        samples = 0
        deadline = time.monotonic() + STEADY_SECONDS
        while time.monotonic() < deadline:
            now = lags()
            assert now is not None, "a partition's lag went missing"
            worst = {p: max(worst[p], now[p]) for p in partitions}
            samples += 1
            time.sleep(1)
        produced = sum(kafka.end_offsets(visits).values()) - sum(produced_before.values())
        print(f"\ndemo at rest: worst lag per partition {worst} over {samples} reads; {produced} records")
        # The load was on: a demo that produced nothing would have no lag either.
        assert produced >= STEADY_SECONDS * 3, produced
        assert all(v < threshold for v in worst.values()), f"lag at or over {threshold}: {worst}"
    finally:
        for process in reversed(started):
            process.stop()
