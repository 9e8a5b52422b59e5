"""The offline cluster's infrastructure images, run the way its manifests run them.

Kafka as k8s/offline/kafka.yaml runs it (StatefulSet and topic Job), Elasticsearch, Prometheus and the
Pushgateway as the chart renders them with k8s/offline/values.yaml: the pod spec's user, read-only root
filesystem, dropped capabilities, memory limit, volumes and env, on the host network with every declared
port moved to a free local one. What each must do is what the cluster relies on: Kafka answers, creates
the chart's topics and keeps them over a restart; Elasticsearch turns healthy with security on and the
chart's password; Prometheus loads the chart's configuration and rules; the Pushgateway takes a push.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from streamwatch_dev.chart import CHART, render
from streamwatch_dev.containers import ChartWiring, ContainerRun
from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.infra_images import (
    ELASTICSEARCH_IMAGE,
    KAFKA_IMAGE,
    PROMETHEUS_IMAGE,
    PUSHGATEWAY_IMAGE,
    SEAWEEDFS_IMAGE,
)
from streamwatch_dev.process import REPO_ROOT, free_port, wait_until
from streamwatch_dev.prometheus import http_get
from streamwatch_dev.workloads import Container, containers, secret_value

OFFLINE = REPO_ROOT / "k8s" / "offline"


@pytest.fixture(scope="module")
def offline_manifests() -> list[dict[str, Any]]:
    return render(values_files=[OFFLINE / "values.yaml"])


@pytest.fixture(scope="module")
def kafka_manifests() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((OFFLINE / "kafka.yaml").read_text()) if doc]


def _container(manifests: list[dict[str, Any]], workload: str, name: str) -> Container:
    (found,) = [
        c
        for c in containers(manifests)
        if c.workload["metadata"]["name"] == workload and c.spec["name"] == name
    ]
    return found


def _check_as_the_pod_spec_says(run: ContainerRun, uid: int) -> None:
    """Non-root as the pod spec says, and nothing written outside its volumes."""
    assert "--read-only" in run.argv and "--cap-drop" in run.argv, "the manifest must give a locked-down pod"
    assert run.process_uids() == {uid}
    assert run.changed_paths() == [], f"{run.name} wrote to its read-only root filesystem"


def _wait_tcp(run: ContainerRun, port: int, timeout: float) -> None:
    """The kubelet's tcpSocket probe: the port accepts a connection (and the container still runs)."""

    def accepts() -> bool:
        if not run.engine.inspect(run.name)["State"]["Running"]:  # pytest.fail is not retried
            pytest.fail(f"{run.name} exited during start:\n{run.logs()[-3000:]}")
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True

    try:
        wait_until(accepts, timeout, interval=0.5, what=f"{run.name} accepting on port {port}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{run.logs()[-3000:]}") from exc


def _run_to_completion(run: ContainerRun, timeout: float) -> tuple[int, str]:
    run.start()
    code = run.wait_exit(timeout)
    return code, run.logs()


# --- the files agree ------------------------------------------------------------------------------


def test_offline_files_name_the_built_images_the_kafka_service_and_the_charts_topics(
    offline_manifests: list[dict[str, Any]], kafka_manifests: list[dict[str, Any]]
) -> None:
    images = {c.component: c.spec["image"] for c in containers(offline_manifests)}
    assert images["elasticsearch"] == ELASTICSEARCH_IMAGE
    assert images["prometheus"] == PROMETHEUS_IMAGE
    assert images["pushgateway"] == PUSHGATEWAY_IMAGE
    assert "grafana" not in images
    assert not [m for m in offline_manifests if m["kind"].startswith("Kafka")], "no Strimzi resources"
    infra = [
        c
        for c in containers(offline_manifests)
        if c.component in {"elasticsearch", "prometheus", "pushgateway"}
    ]
    assert {c.spec["imagePullPolicy"] for c in infra} == {"IfNotPresent"}, "images are loaded, never pulled"

    broker = _container(kafka_manifests, "kafka", "kafka")
    job = _container(kafka_manifests, "kafka-topics", "create-topics")
    assert broker.spec["image"] == job.spec["image"] == KAFKA_IMAGE
    (service,) = [
        m for m in kafka_manifests if m["kind"] == "Service" and m["spec"].get("type") == "ClusterIP"
    ]
    bootstrap = f"{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    rendered = {
        e["value"]
        for c in containers(offline_manifests)
        for e in c.spec.get("env", [])
        if e["name"] == "KAFKA_BOOTSTRAP_SERVERS"
    }
    assert rendered == {bootstrap}
    assert job.env()["KAFKA_BOOTSTRAP_SERVERS"]["value"] == bootstrap

    # The Job creates the topics the chart's services are configured with, at the chart's partition counts.
    topics = yaml.safe_load((CHART / "values.yaml").read_text())["kafka"]["topics"]
    wanted = ",".join(f"{t['name']}:{t['partitions']}" for t in (topics["visits"], topics["processedVisits"]))
    assert job.env()["KAFKA_TOPICS"]["value"] == wanted

    # The object store of the tests' values (passthrough.checkpoint.url, objectStore): the built image,
    # loaded, with the bucket of the URL made at start and the S3 port the endpoint names.
    store_manifests = [d for d in yaml.safe_load_all((OFFLINE / "seaweedfs.yaml").read_text()) if d]
    store = _container(store_manifests, "seaweedfs", "seaweedfs")
    assert (store.spec["image"], store.spec["imagePullPolicy"]) == (SEAWEEDFS_IMAGE, "IfNotPresent")
    test_values = yaml.safe_load((REPO_ROOT / "tests" / "e2e_kind" / "values.yaml").read_text())
    bucket = test_values["passthrough"]["checkpoint"]["url"].removeprefix("s3a://").split("/")[0]
    assert f"-bucket={bucket}" in store.spec["args"]
    (store_service,) = [m for m in store_manifests if m["kind"] == "Service"]
    port = store_service["spec"]["ports"][0]["port"]
    assert f"-s3.port={port}" in store.spec["args"]
    assert test_values["objectStore"]["endpoint"] == f"http://{store_service['metadata']['name']}:{port}"


# --- Kafka ----------------------------------------------------------------------------------------


def test_kafka_image_serves_the_topics_the_job_creates_and_keeps_them_over_a_restart(
    docker_engine: DockerEngine,
    infra_images: dict[str, str],
    kafka_manifests: list[dict[str, Any]],
    output_dir: Path,
) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    wiring = ChartWiring(docker_engine, kafka_manifests, hosts={"kafka:9092": bootstrap}, root=output_dir)
    broker = _container(kafka_manifests, "kafka", "kafka")
    local = {
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_LISTEN_HOST": "127.0.0.1",
        "KAFKA_ADVERTISED_HOST": "127.0.0.1",
        "KAFKA_CFG_LOG_RETENTION_HOURS": "24",  # any broker setting, as KAFKA_CFG_<NAME>
    }
    run_id = uuid.uuid4().hex[:8]
    names = [f"sw-kafka-{run_id}-{i}" for i in range(5)]

    def start_broker(name: str) -> ContainerRun:
        run = wiring.container(broker, name, extra_env=local, ports={9092: port}).start()
        _wait_tcp(run, port, 120)
        return run

    job = _container(kafka_manifests, "kafka-topics", "create-topics")
    try:
        first = start_broker(names[0])
        code, output = _run_to_completion(wiring.container(job, names[1]), 120)
        assert code == 0, f"the topic Job failed:\n{output[-3000:]}"
        assert "created topic visits with 6 partitions" in output
        assert "created topic processed_visits with 6 partitions" in output

        producer = Producer({"bootstrap.servers": bootstrap})
        for i in range(12):
            producer.produce("visits", key=str(i).encode(), value=b"v%d" % i)
        assert producer.flush(30) == 0, "records not delivered"
        _check_as_the_pod_spec_says(first, uid=1001)
        config = (output_dir / "claims" / "data-kafka-0" / "server.properties").read_text().splitlines()
        assert config[-1] == "log.retention.hours=24" and "auto.create.topics.enable=false" in config
        # SIGTERM: a controlled shutdown, after which the JVM exits with 128 + 15 as Kafka's own image does.
        assert first.stop() == 143, f"no clean shutdown:\n{first.logs()[-2000:]}"
        assert "[BrokerServer id=1] shut down completed" in first.logs()

        # Same claim, new container: the log directory is kept (not formatted again), topics and records too.
        second = start_broker(names[2])
        assert "formatting" not in second.logs()
        code, output = _run_to_completion(wiring.container(job, names[3]), 120)
        assert code == 0 and "created topic" not in output, output[-3000:]
        assert "topic visits: 6 partitions" in output
        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"t-{run_id}", "enable.auto.commit": False}
        )
        try:
            ends = [
                consumer.get_watermark_offsets(TopicPartition("visits", p), timeout=10)[1] for p in range(6)
            ]
        finally:
            consumer.close()
        assert sum(ends) == 12

        # A topic that exists with another partition count is an error, not a success.
        wrong = wiring.container(job, names[4], extra_env={"KAFKA_TOPICS": "visits:3"})
        code, output = _run_to_completion(wrong, 120)
        assert code == 2 and "topic visits has 6 partitions, 3 wanted" in output, output[-3000:]
    finally:
        for name in names:
            docker_engine.remove(name)


# --- Elasticsearch --------------------------------------------------------------------------------


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"elastic:{password}".encode()).decode()}


def _request(url: str, password: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {**_basic(password), "Content-Type": "application/json"}
    with urllib.request.urlopen(
        urllib.request.Request(url, data, headers, method=method), timeout=30
    ) as resp:
        return json.loads(resp.read())


def test_elasticsearch_image_turns_healthy_with_security_on_as_the_chart_runs_it(
    docker_engine: DockerEngine,
    infra_images: dict[str, str],
    offline_manifests: list[dict[str, Any]],
    output_dir: Path,
) -> None:
    (init,) = [c for c in containers(offline_manifests) if c.component == "elasticsearch" and c.init]
    (main,) = [c for c in containers(offline_manifests) if c.component == "elasticsearch" and not c.init]
    wiring = ChartWiring(docker_engine, offline_manifests, hosts={}, root=output_dir)
    pod = f"sw-es-{uuid.uuid4().hex[:8]}"
    copy, server = f"{pod}-copy", pod
    port = free_port()
    # Settings from the environment, as the official image takes them: here only where the host network
    # needs other addresses than a pod's.
    local = {"http.port": str(port), "transport.port": str(free_port()), "network.host": "127.0.0.1"}
    try:
        code, output = _run_to_completion(wiring.container(init, copy, pod=pod), 60)
        assert code == 0, f"the init container's config copy failed:\n{output}"
        run = wiring.container(main, server, extra_env=local, ports={9200: port}, pod=pod).start()
        password = run.env["ELASTIC_PASSWORD"]
        assert password == secret_value(
            offline_manifests, main.env()["ELASTIC_PASSWORD"]["valueFrom"]["secretKeyRef"]
        )

        # The chart's readiness probe, run inside the container as the kubelet runs it (sh, curl, the env).
        (probe,) = [
            p.replace("localhost:9200", f"localhost:{port}")
            for p in main.spec["readinessProbe"]["exec"]["command"][2:]
        ]

        def ready() -> bool:
            # Fatal, so pytest.fail (which wait_until does not retry): the container exited, or the
            # probe cannot run at all (126/127: no sh or no curl), so the kubelet would never see it ready.
            if not docker_engine.inspect(server)["State"]["Running"]:
                pytest.fail(f"elasticsearch exited during start:\n{run.logs()[-4000:]}")
            result = docker_engine.run("exec", server, "sh", "-c", probe, check=False)
            if result.returncode in {126, 127}:
                pytest.fail(f"the chart's readiness probe cannot run: {result.stderr}{result.stdout}")
            return result.returncode == 0

        try:
            wait_until(ready, 150, interval=2, what="the chart's readiness probe")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{run.logs()[-4000:]}") from exc

        url = f"http://127.0.0.1:{port}"
        health = _request(f"{url}/_cluster/health", password)
        assert health["status"] in {"green", "yellow"} and health["cluster_name"] == "sw-streamwatch"
        with pytest.raises(urllib.error.HTTPError) as denied:
            _request(f"{url}/_cluster/health", "not-the-password")
        assert denied.value.code == 401, "security must be on"
        # What the observer and the helm test do: create an index, write, count, ask for the index.
        _request(f"{url}/sw-test", password, "PUT", {"mappings": {"properties": {"n": {"type": "long"}}}})
        _request(f"{url}/sw-test/_doc/1?refresh=true", password, "PUT", {"n": 1})
        assert _request(f"{url}/sw-test/_count", password)["count"] == 1
        assert "sw-test" in _request(f"{url}/sw-test", password)
        _check_as_the_pod_spec_says(run, uid=1000)
    finally:
        docker_engine.remove(copy)
        docker_engine.remove(server)


# --- Prometheus and the Pushgateway ---------------------------------------------------------------


def _component(manifests: list[dict[str, Any]], component: str) -> Container:
    (found,) = [
        c
        for c in containers(manifests)
        if c.component == component and not c.init and c.workload["kind"] != "Pod"
    ]
    return found


def _local_listen_args(c: Container, container_port: int, port: int) -> list[str]:
    """The chart's args, listening on the local port instead of the pod's."""
    return [
        a.replace(f"--web.listen-address=:{container_port}", f"--web.listen-address=127.0.0.1:{port}")
        for a in c.spec["args"]
    ]


def test_prometheus_image_loads_the_charts_config_and_rules(
    docker_engine: DockerEngine,
    infra_images: dict[str, str],
    offline_manifests: list[dict[str, Any]],
    output_dir: Path,
) -> None:
    prometheus = _component(offline_manifests, "prometheus")
    assert "command" not in prometheus.spec, "the chart relies on the image's entrypoint"
    assert docker_engine.inspect(PROMETHEUS_IMAGE)["Config"]["Entrypoint"] == ["/bin/prometheus"]
    wiring = ChartWiring(docker_engine, offline_manifests, hosts={}, root=output_dir)
    name = f"sw-prometheus-{uuid.uuid4().hex[:8]}"
    check = ["promtool", "check", "config", "/etc/prometheus/prometheus.yml"]
    (rule_files,) = [
        m["data"]
        for m in offline_manifests
        if m["kind"] == "ConfigMap" and m["metadata"]["name"].endswith("-prometheus-rules")
    ]
    rules = {group["name"] for text in rule_files.values() for group in yaml.safe_load(text)["groups"]}
    try:
        code, output = _run_to_completion(wiring.container(prometheus, f"{name}-check", command=check), 60)
        assert code == 0, f"promtool rejects the chart's configuration:\n{output}"
        assert f"SUCCESS: {len(rule_files)} rule files found" in output, output

        port = free_port()
        args = _local_listen_args(prometheus, 9090, port)
        # pod=: its data emptyDir as the kubelet makes it (world-writable), where a tmpfs over the image's
        # /prometheus would take that directory's mode and be closed to uid 65534.
        run = wiring.container(prometheus, name, ports={9090: port}, args=args, pod=name)
        run.start().wait_ready(90)
        loaded = json.loads(http_get(run.url(9090, "/api/v1/rules")))["data"]["groups"]
        assert {g["name"] for g in loaded} == rules
        assert all(r["health"] != "err" for g in loaded for r in g["rules"])
        _check_as_the_pod_spec_says(run, uid=65534)
    finally:
        docker_engine.remove(f"{name}-check")
        docker_engine.remove(name)


def test_pushgateway_image_serves_ready_and_keeps_a_push(
    docker_engine: DockerEngine,
    infra_images: dict[str, str],
    offline_manifests: list[dict[str, Any]],
    output_dir: Path,
) -> None:
    gateway = _component(offline_manifests, "pushgateway")
    assert "command" not in gateway.spec, "the chart relies on the image's entrypoint"
    assert docker_engine.inspect(PUSHGATEWAY_IMAGE)["Config"]["Entrypoint"] == ["/bin/pushgateway"]
    wiring = ChartWiring(docker_engine, offline_manifests, hosts={}, root=output_dir)
    name = f"sw-pushgateway-{uuid.uuid4().hex[:8]}"
    port = free_port()
    try:
        run = wiring.container(
            gateway, name, ports={9091: port}, args=_local_listen_args(gateway, 9091, port)
        )
        run.start().wait_ready(60)
        push = urllib.request.Request(
            run.url(9091, "/metrics/job/infra_test"), b"streaming_batch_duration_seconds 1.5\n", method="PUT"
        )
        with urllib.request.urlopen(push, timeout=10) as resp:
            assert resp.status in {200, 202}
        assert (
            'streaming_batch_duration_seconds{instance="",job="infra_test"} 1.5'
            in http_get(run.url(9091, "/metrics")).decode()
        )
        _check_as_the_pod_spec_says(run, uid=65534)
    finally:
        docker_engine.remove(name)
