"""Spark's own connectors from the images: both Spark jobs with ``connector: jvm``, wired by the rendered
chart, run from the images this run built with the connector jars baked in (as ``make spark-jars`` then
``make container-images`` leave them), against the real local broker.

The generator's finite run reaches ``processed_visits`` partition for partition and offset for offset
(Spark's Kafka source and sink), and the Delta tables hold every record once (delta-spark). The default
``python`` connector runs the whole system in ``test_system.py``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from visits_writer.stack import WriterPaths, written

from streamwatch_dev.chart import render
from streamwatch_dev.containers import ChartWiring, ContainerRun
from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.images import BuildResult
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Pushgateway
from streamwatch_dev.workloads import Container, by_kind, service_containers

pytestmark = pytest.mark.spark

RELEASE = "swjvm"
TOTAL = 600


def _main(wiring: ChartWiring, component: str) -> Container:
    return next(c for c in service_containers(wiring.manifests, component) if not c.init)


def test_both_spark_jobs_run_the_jvm_connectors_from_the_images(
    docker_engine: DockerEngine,
    service_images: dict[str, BuildResult],
    kafka: KafkaBroker,
    output_root: Path,
) -> None:
    run_id = uuid.uuid4().hex[:8]
    root = output_root / f"containers-jvm-{run_id}"
    root.mkdir(parents=True)
    values = {
        "kafka.topics.visits.name": f"visits-{run_id}",
        "kafka.topics.processedVisits.name": f"processed_visits-{run_id}",
        "visitsWriter.settings.connector": "jvm",
        "passthrough.settings.connector": "jvm",
        "visitsWriter.settings.trigger_interval_seconds": "1",
        "passthrough.settings.trigger_interval_seconds": "1",
        "generator.settings.total": str(TOTAL),
        "generator.settings.rate": "100",
        "generator.settings.seed": "23",
        "generator.settings.unparseable_percent": "3",
        "generator.settings.missing_fields_percent": "8",
    }
    gateway = Pushgateway.start(root)
    fullname = f"{RELEASE}-streamwatch"
    hosts = {
        f"{fullname}-kafka-kafka-bootstrap:9092": kafka.bootstrap,
        f"http://{fullname}-pushgateway:9091": gateway.url,
    }
    manifests = render(values, release=RELEASE)
    wiring = ChartWiring(docker_engine, manifests, hosts, root, secrets=by_kind(manifests, "Secret"))
    for topic in by_kind(manifests, "KafkaTopic"):
        kafka.create_topic(topic["spec"]["topicName"], partitions=topic["spec"]["partitions"])
    visits, processed = values["kafka.topics.visits.name"], values["kafka.topics.processedVisits.name"]
    runs: list[ContainerRun] = []

    def start(c: Container, name: str) -> ContainerRun:
        run = wiring.container(c, f"{fullname}-{name}-{run_id}").start()
        runs.append(run)
        return run

    try:
        init = next(c for c in service_containers(manifests, "visits-writer") if c.init)
        tables = start(init, "visits-writer-init")
        assert tables.wait_exit(240) == 0, tables.logs()[-3000:]
        jobs = {
            component: start(_main(wiring, component), component).wait_ready(240)
            for component in ("visits-writer", "passthrough")
        }
        for component, run in jobs.items():
            started = [json.loads(line) for line in run.logs().splitlines() if '"query_started"' in line]
            assert [s["connector"] for s in started] == ["jvm"], f"{component}: {started}"
        generator = start(_main(wiring, "generator"), "generator")
        assert generator.wait_exit(240) == 0, generator.logs()[-3000:]
        produced = kafka.end_offsets(visits)
        assert sum(produced.values()) == TOTAL

        wait_until(
            lambda: kafka.end_offsets(processed) == produced, 240, interval=1, what="the copy complete"
        )
        paths = WriterPaths(root / "claims" / f"{fullname}-visits-writer")

        def complete() -> int:
            rows, dead = written(paths)
            return len(rows) + len(dead)

        wait_until(lambda: complete() >= TOTAL, 240, interval=2, what="the Delta tables complete")
        rows, dead = written(paths)
        coordinates = [(r["partition"], r["offset"]) for r in rows + dead]
        assert sorted(coordinates) == sorted((p, o) for p, end in produced.items() for o in range(end))
        assert dead and {r["reason"] for r in dead} <= {
            "unparseable",
            "missing_required_field",
            "empty_value",
        }
        for component, run in jobs.items():
            assert run.stop() == 0, f"{component} did not stop cleanly:\n{run.logs()[-3000:]}"
    finally:
        for run in runs:
            run.stop()
            (root / f"{run.name}.log").write_text(run.logs())
            docker_engine.remove(run.name)
        gateway.stop()
