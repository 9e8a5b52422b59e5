"""Chart-driven local run: the chart's rendered commands and environments boot the real services.

The chart is rendered with test-sized values (through the chart's own values, so the value → env var
mapping is exercised too). Each service container's command and environment is taken as rendered and
made local by ``streamwatch_dev.wiring`` (the code ``make demo`` starts its services with):
in-cluster host names are pointed at the local components (broker, Pushgateway, search server, the locally
started profile publisher), volume mount paths at local directories (the passthrough's checkpoint claim
is the same directory in the passthrough and in the observer, as in the cluster), Secrets are read from
the rendered Secret objects. Visits must flow generator → visits writer (SLA metric in the Pushgateway)
and generator → passthrough → observer (observation documents in the search server).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamwatch_dev.chart import render
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import free_port, wait_until
from streamwatch_dev.prometheus import Pushgateway
from streamwatch_dev.search import SearchServer
from streamwatch_dev.services import ServiceProcess, metric_value, service_env
from streamwatch_dev.wiring import infrastructure_hosts, local_container
from streamwatch_dev.workloads import Container, by_kind, service_containers

Manifest = dict[str, Any]
OBSERVATION_INDEX = "visits_observation_stats"


@pytest.mark.spark
def test_chart_configuration_boots_the_services_and_visits_flow(
    kafka: KafkaBroker, pushgateway: Pushgateway, search: SearchServer, output_dir: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    visits, processed = f"visits-{run}", f"processed_visits-{run}"
    manifests = render(
        {
            # unique names on the shared harness components
            "kafka.topics.visits.name": visits,
            "kafka.topics.processedVisits.name": processed,
            "visitsWriter.settings.instance": f"chart-run-{run}",
            "observer.settings.group_id": f"observer-{run}",
            # test-sized load and windows
            "generator.settings.rate": "50",
            "generator.settings.total": "300",
            "generator.settings.seed": "7",
            "visitsWriter.settings.trigger_interval_seconds": "1",
            "passthrough.settings.trigger_interval_seconds": "1",
            "observer.settings.window_records": "50",
            "observer.settings.window_seconds": "5",
            "observer.settings.lag_interval_seconds": "2",
            "observer.settings.profile_max_rows": "50",
        }
    )
    for topic in by_kind(manifests, "KafkaTopic"):  # what the Strimzi topic operator does in the cluster
        kafka.create_topic(topic["spec"]["topicName"], partitions=topic["spec"]["partitions"])

    publisher_port = free_port()
    hosts = {
        **infrastructure_hosts(
            manifests,
            kafka.bootstrap,
            {"pushgateway": pushgateway.url, "elasticsearch": search.url},
        ),
        "http://sw-streamwatch-profile-publisher:8000": f"http://127.0.0.1:{publisher_port}",
    }
    # the chart's own names, so a renamed Service cannot leave an address unmapped here
    assert set(hosts) >= {
        "sw-streamwatch-kafka-kafka-bootstrap:9092",
        "http://sw-streamwatch-pushgateway:9091",
        "http://sw-streamwatch-elasticsearch:9200",
    }, hosts
    started: list[ServiceProcess] = []

    def process(c: Container, extra: dict[str, str] | None = None) -> ServiceProcess:
        local = local_container(c, manifests, hosts, output_dir)
        proc = ServiceProcess(
            local.command[0],
            output_dir / f"{local.name}.log",
            service_env(**{**local.env, **(extra or {})}),
            local.command[1:],
        )
        (output_dir / f"{local.name}.env.json").write_text(json.dumps(local.env, indent=2, sort_keys=True))
        return proc

    t0 = time.monotonic()
    timeline: dict[str, float] = {}
    try:
        (publisher,) = service_containers(manifests, "profile-publisher")
        pub = process(
            publisher, {"OPS_PORT": str(publisher_port), "PROFILE_PUBLISHER_PORT": str(publisher_port)}
        )
        started.append(pub.start_ready(timeout=60))

        # the visits writer's init container, then the job
        writer_init, writer = sorted(service_containers(manifests, "visits-writer"), key=lambda c: not c.init)
        assert writer_init.init and writer_init.spec["command"][-1] == "create-tables"
        init = process(writer_init)
        init.start()
        assert init.wait(180) == 0, init.tail()
        timeline["tables created"] = time.monotonic() - t0

        for c in (
            writer,
            *service_containers(manifests, "passthrough"),
            *service_containers(manifests, "observer"),
        ):
            started.append(process(c).start_ready(timeout=120))
        (generator,) = service_containers(manifests, "generator")
        gen = process(generator)
        started.append(gen.start_ready(timeout=60))
        timeline["all started"] = time.monotonic() - t0

        def sla_metric() -> float | None:
            return metric_value(
                pushgateway.metrics_text(),
                "visits_sync_duration",
                job="visits_to_delta_synchronizer",
                instance=f"chart-run-{run}",
            )

        duration_ms = wait_until(sla_metric, 240, interval=1, what="visits_sync_duration in the Pushgateway")
        timeline["SLA metric pushed"] = time.monotonic() - t0

        def observation() -> list[dict[str, Any]]:
            try:
                docs = search.all_docs(OBSERVATION_INDEX)
            except RuntimeError:  # index not created yet
                return []
            return [d for d in docs if d.get("doc_type") == "window" and d.get("topic") == processed]

        windows = wait_until(observation, 240, interval=1, what="a window observation document")
        timeline["observation document"] = time.monotonic() - t0
        assert isinstance(windows, list)
        assert all(w["source_topic"] == visits and w["all_events"] > 0 for w in windows)
        assert isinstance(duration_ms, float) and duration_ms > 0
        rounded = {k: round(v, 1) for k, v in timeline.items()}
        print(f"\nchart-driven local run timeline (s): {json.dumps(rounded)}")
        print(f"first visits_sync_duration: {duration_ms:.0f} ms; window documents: {len(windows)}")
        # the observer's checkpoint mount is the passthrough's claim: same local directory
        checkpoint = output_dir / "claims" / "sw-streamwatch-passthrough"
        assert any(checkpoint.rglob("offsets/*")), (
            "the passthrough wrote no checkpoint where the observer reads"
        )
    finally:
        for proc in reversed(started):
            proc.stop()
