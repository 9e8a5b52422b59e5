"""The default CPU requests fit a small kind node. On the first real install (one 2-CPU node: 2,000m
allocatable, ~850m taken by the control plane) the chart asked for 1,170m with one observer, and the
Spark jobs and the observer stayed Pending with "Insufficient cpu".

Counted: every pod of the default render, as the scheduler counts it (a pod requests the larger of its
containers' sum and its largest init container), times its replicas (1 when the chart renders none):
our five services, Pushgateway, Prometheus, Elasticsearch, Grafana and the `helm test` pod. Not counted:
Kafka, whose pods Strimzi makes from the Kafka resources (``kafka.resources``), and Strimzi's operator;
they are added for the README's minimum node size with Strimzi.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

import yaml
from chart.conftest import Manifest

from streamwatch_dev.process import REPO_ROOT
from streamwatch_dev.workloads import pod_spec

# What a one-node kind cluster's control plane and kube-system pods request (measured on the first
# install, Kubernetes 1.34): etcd, API server, controller manager, scheduler, CoreDNS x2, kindnet.
KIND_CONTROL_PLANE_MILLICPU = 850
NODE_ALLOCATABLE_2_CPU = 2000
# The bound the issue set for the chart with one observer, leaving room for Kafka on a 2-CPU node.
CHART_BOUND_ONE_OBSERVER = 1000


def millicpu(quantity: str | int | float) -> int:
    """A Kubernetes CPU quantity ("150m", "1", 0.5) in millicores, rounded up as the API server does."""
    text = str(quantity)
    if text.endswith("m"):
        return int(text[:-1])
    return math.ceil(Decimal(text) * 1000)


def _container_request(container: dict[str, Any]) -> int:
    return millicpu(container.get("resources", {}).get("requests", {}).get("cpu", 0))


def pod_request(spec: dict[str, Any]) -> int:
    """What the scheduler reserves for one pod: max(sum of containers, largest init container)."""
    containers = sum(_container_request(c) for c in spec["containers"])
    inits = [_container_request(c) for c in spec.get("initContainers", [])]
    return max([containers, *inits])


def requests_by_workload(manifests: list[Manifest]) -> dict[str, tuple[int, int]]:
    """``Kind/name`` → (CPU request of one pod in millicores, replicas) of every pod the chart makes."""
    found: dict[str, tuple[int, int]] = {}
    for m in manifests:
        spec = pod_spec(m)
        # The post-delete clean-up pod runs only once the release is gone.
        if spec is None or m["metadata"].get("annotations", {}).get("helm.sh/hook") == "post-delete":
            continue
        replicas = 1 if m["kind"] == "Pod" else int(m["spec"].get("replicas", 1))
        found[f"{m['kind']}/{m['metadata']['name']}"] = (pod_request(spec), replicas)
    return found


def total(found: dict[str, tuple[int, int]], observers: int = 1) -> int:
    """Sum over the pods, with the observer Deployment at ``observers`` replicas."""
    return sum(
        request * (observers if name == "Deployment/sw-streamwatch-observer" else replicas)
        for name, (request, replicas) in found.items()
    )


def strimzi_millicpu(manifests: list[Manifest]) -> int:
    """Kafka's pods under Strimzi: each KafkaNodePool replica's request, plus the operator's
    (k8s/strimzi-values.yaml, the values `make up` installs it with)."""
    nodes = sum(
        millicpu(m["spec"]["resources"]["requests"]["cpu"]) * int(m["spec"]["replicas"])
        for m in manifests
        if m["kind"] == "KafkaNodePool"
    )
    operator = yaml.safe_load((REPO_ROOT / "k8s" / "strimzi-values.yaml").read_text())
    return nodes + millicpu(operator["resources"]["requests"]["cpu"])


def node_size(manifests: list[Manifest]) -> dict[str, int]:
    """The numbers the README states under "Minimum node size"."""
    found = requests_by_workload(manifests)
    one, three = total(found, 1), total(found, 3)
    strimzi = strimzi_millicpu(manifests)
    return {
        "one": one,
        "per_observer": found["Deployment/sw-streamwatch-observer"][0],
        "three": three,
        "node_one": KIND_CONTROL_PLANE_MILLICPU + one,
        "node_three": KIND_CONTROL_PLANE_MILLICPU + three,
        "strimzi": strimzi,
        "node_one_strimzi": KIND_CONTROL_PLANE_MILLICPU + one + strimzi,
        "node_three_strimzi": KIND_CONTROL_PLANE_MILLICPU + three + strimzi,
        "cpus_three_strimzi": math.ceil((KIND_CONTROL_PLANE_MILLICPU + three + strimzi) / 1000),
    }


def test_pod_request_counts_init_containers_as_the_scheduler_does() -> None:
    spec = {
        "initContainers": [{"resources": {"requests": {"cpu": "300m"}}}],
        "containers": [
            {"resources": {"requests": {"cpu": "100m"}}},
            {"resources": {"requests": {"cpu": 0.1}}},
        ],
    }
    assert pod_request(spec) == 300
    spec["initContainers"] = [{"resources": {"requests": {"cpu": "50m"}}}]
    assert pod_request(spec) == 200
    assert millicpu("1") == 1000 and millicpu(0.25) == 250 and millicpu("1500m") == 1500


def test_default_requests_with_one_observer_fit_a_2_cpu_kind_node(default_manifests: list[Manifest]) -> None:
    found = requests_by_workload(default_manifests)
    # Everything the defaults run is counted (Grafana and the helm test pod included), Kafka is not.
    assert {name.split("/", 1)[1].removeprefix("sw-streamwatch-") for name in found} == {
        "generator", "visits-writer", "passthrough", "observer", "profile-publisher", "pushgateway",
        "prometheus", "elasticsearch", "grafana", "test",
    }, found  # fmt: skip
    one = total(found)
    print(f"\ndefault CPU requests: {one}m with one observer; by pod: {found}")
    assert one <= CHART_BOUND_ONE_OBSERVER, found
    assert KIND_CONTROL_PLANE_MILLICPU + one <= NODE_ALLOCATABLE_2_CPU


def test_readme_states_the_minimum_node_size_computed_from_the_render(
    default_manifests: list[Manifest],
) -> None:
    n = node_size(default_manifests)
    readme = (REPO_ROOT / "README.md").read_text()
    (paragraph,) = [p for p in readme.split("\n\n") if p.startswith("Minimum node size.")]
    text = re.sub(r"\s+", " ", paragraph)

    def m(value: int) -> str:
        return f"{value:,}m"

    for expected in (
        f"{m(n['one'])} of CPU with one observer",
        f"{m(n['per_observer'])} per further observer",
        f"{m(n['three'])} with three",
        f"about {m(KIND_CONTROL_PLANE_MILLICPU)}",
        f"at least {m(n['node_one'])} allocatable CPU with one observer and {m(n['node_three'])} with three",
        f"Strimzi's Kafka adds {m(n['strimzi'])}",
        f"one observer then needs {m(n['node_one_strimzi'])}",
        f"three need {m(n['node_three_strimzi'])}",
        f"{n['cpus_three_strimzi']} CPUs",
    ):
        assert expected in text, f"{expected!r} not in the README's paragraph:\n{text}\n(computed: {n})"
