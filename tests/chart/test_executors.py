"""``<job>.spark.executors`` in the chart: with a count, the job's driver gets a namespaced Role (pods,
configmaps; nothing cluster-wide), its token, a headless Service on Spark's fixed ports and an executor
pod template in its own image, security context and placement, whose labels no driver selector matches;
its settings accept the rendered environment. Without, none of it, and no token. Combinations that cannot
work are refused in one sentence naming the value."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from streamwatch_dev.chart import render
from streamwatch_dev.workloads import by_kind, service_containers
from streamwatch_passthrough.settings import PassthroughSettings

PASSTHROUGH = {"passthrough.spark.executors.count": 2, "passthrough.spark.executors.cpuRequest": "100m"}


def named(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in by_kind(manifests, kind) if m["metadata"]["name"] == name]
    return found


def driver(manifests: list[dict[str, Any]], component: str) -> dict[str, Any]:
    return named(manifests, "Deployment", f"sw-streamwatch-{component}")


def test_executors_give_the_driver_a_namespaced_role_a_service_and_a_template_like_its_own_pod() -> None:
    placement = {"passthrough.nodeSelector.pool": "spark", "passthrough.tolerations[0].key": "spark",
                 "passthrough.tolerations[0].operator": "Exists"}  # fmt: skip
    manifests = render({**PASSTHROUGH, **placement})
    role = named(manifests, "Role", "sw-streamwatch-passthrough-executors")
    assert {r["resources"][0]: set(r["verbs"]) for r in role["rules"]} == {
        "pods": {"create", "get", "list", "watch", "delete", "deletecollection"},
        "configmaps": {"create", "get", "list", "watch", "delete", "deletecollection"},
        "services": {"get", "list"},
    }
    assert not [m for m in by_kind(manifests, "ClusterRoleBinding") if "passthrough" in m["metadata"]["name"]]
    binding = named(manifests, "RoleBinding", "sw-streamwatch-passthrough-executors")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "sw-streamwatch-passthrough", "namespace": "default"}
    ]

    pod = driver(manifests, "passthrough")["spec"]["template"]
    assert pod["spec"]["automountServiceAccountToken"] is True
    # Only the job that asked talks to the API server.
    assert (
        driver(manifests, "visits-writer")["spec"]["template"]["spec"]["automountServiceAccountToken"]
        is False
    )

    service = named(manifests, "Service", "sw-streamwatch-passthrough-driver")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == driver(manifests, "passthrough")["spec"]["selector"]["matchLabels"]
    assert {p["port"] for p in service["spec"]["ports"]} == {7078, 7079}

    (container,) = [c for c in service_containers(manifests, "passthrough") if not c.init]
    env = container.env()
    assert env["PASSTHROUGH_EXECUTORS"]["value"] == "2"
    assert env["PASSTHROUGH_DRIVER_SERVICE"]["value"] == "sw-streamwatch-passthrough-driver.default.svc"
    assert env["PASSTHROUGH_DRIVER_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"

    configmap = named(manifests, "ConfigMap", "sw-streamwatch-passthrough-executors")
    template = yaml.safe_load(configmap["data"]["pod-template.yaml"])
    (executor,) = template["spec"]["containers"]
    assert executor["name"] == "executor" and executor["command"] == ["streamwatch-spark-executor"]
    assert executor["image"] == container.spec["image"]
    assert executor["securityContext"] == container.spec["securityContext"]
    assert template["spec"]["securityContext"] == pod["spec"]["securityContext"]
    assert template["spec"]["automountServiceAccountToken"] is False
    assert template["spec"]["nodeSelector"] == pod["spec"]["nodeSelector"] == {"pool": "spark"}
    assert template["spec"]["tolerations"] == pod["spec"]["tolerations"]
    # The writable /tmp is Spark's local directory by its name: Spark adds no second mount of the path.
    (scratch,) = [m for m in executor["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert scratch["name"].startswith("spark-local-dir-")
    assert {v["name"] for v in template["spec"]["volumes"]} == {scratch["name"]}
    # Neither the Deployment nor the driver Service may take an executor for the driver.
    labels = template["metadata"]["labels"]
    for selector in (
        service["spec"]["selector"],
        driver(manifests, "passthrough")["spec"]["selector"]["matchLabels"],
    ):
        assert not selector.items() <= labels.items()
    executor_env = {e["name"]: e for e in executor["env"]}
    assert executor_env["KAFKA_BOOTSTRAP_SERVERS"] == env["KAFKA_BOOTSTRAP_SERVERS"]
    mounts = {m["mountPath"] for m in container.spec["volumeMounts"]}
    assert env["PASSTHROUGH_EXECUTOR_POD_TEMPLATE"]["value"].rsplit("/", 1)[0] in mounts


def test_the_rendered_environment_is_what_the_settings_accept(monkeypatch: pytest.MonkeyPatch) -> None:
    manifests = render(PASSTHROUGH)
    (container,) = [c for c in service_containers(manifests, "passthrough") if not c.init]
    from_fields = {
        "PASSTHROUGH_KUBERNETES_NAMESPACE": "streamwatch",
        "PASSTHROUGH_DRIVER_POD_NAME": "driver-0",
    }
    for name, variable in container.env().items():
        if name.startswith(("PASSTHROUGH_", "KAFKA_")):
            monkeypatch.setenv(name, variable.get("value") or from_fields.get(name, ""))
    settings = PassthroughSettings()
    assert settings.master == "k8s://https://kubernetes.default.svc"
    conf = settings.spark_session_conf()
    assert conf["spark.executor.instances"] == "2"
    assert conf["spark.kubernetes.executor.request.cores"] == "100m"
    assert conf["spark.kubernetes.driver.pod.name"] == "driver-0"
    assert conf["spark.driver.host"] == "sw-streamwatch-passthrough-driver.default.svc"
    assert conf["spark.kubernetes.container.image"] == container.spec["image"]


def test_without_executors_nothing_of_it_is_made_and_no_token_is_mounted() -> None:
    manifests = render()
    assert not [m for m in manifests if m["metadata"]["name"].endswith(("-executors", "-driver"))]
    for component in ("passthrough", "visits-writer"):
        assert (
            driver(manifests, component)["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
        )
        (container,) = [c for c in service_containers(manifests, component) if not c.init]
        prefix = "PASSTHROUGH_" if component == "passthrough" else "VISITS_WRITER_"
        assert container.env()[f"{prefix}EXECUTORS"]["value"] == "0"


K8S_MASTER = {"passthrough.settings.spark_master": "k8s://https://kubernetes.default.svc"}
JVM_WRITER_ON_A_VOLUME = {"visitsWriter.spark.executors.count": 2, "visitsWriter.settings.connector": "jvm"}
MAX_BELOW_COUNT = {"passthrough.spark.executors.count": 3, "passthrough.spark.executors.max": 2}


@pytest.mark.parametrize(
    ("values", "named_value"),
    [
        (K8S_MASTER, "passthrough.settings.spark_master"),
        (JVM_WRITER_ON_A_VOLUME, "visitsWriter.spark.executors.count"),
        (MAX_BELOW_COUNT, "passthrough.spark.executors.max"),
    ],
)
def test_what_cannot_work_is_refused_in_one_sentence(values: dict[str, Any], named_value: str) -> None:
    with pytest.raises(RuntimeError) as refused:
        render(values)
    assert named_value in str(refused.value)


def test_the_jvm_visits_writer_may_have_executors_with_its_tables_on_the_store() -> None:
    manifests = render({"visitsWriter.spark.executors.count": 2, "visitsWriter.settings.connector": "jvm",
                        "visitsWriter.storage.url": "s3a://lake/streamwatch"})  # fmt: skip
    assert named(manifests, "Role", "sw-streamwatch-visits-writer-executors")
