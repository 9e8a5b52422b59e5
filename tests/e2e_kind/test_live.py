"""The installed chart, live: pods ready, observations arrive, `helm upgrade` flips the SLA alert, the
observer scales to 3 replicas without duplicate observations (and a later `helm upgrade` keeps 3), and a
broker restart heals by itself."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from typing import Any, cast

from e2e_kind.cluster import Cluster

COMPONENTS = (
    "generator", "visits-writer", "passthrough", "observer", "profile-publisher",
    "pushgateway", "prometheus", "elasticsearch", "grafana",
)  # fmt: skip
SLA_ALERT = "SLA miss visits synchronizer"
INDEX = "visits_observation_stats"


def test_every_component_is_ready_and_kafka_is_up(cluster: Cluster) -> None:
    for component in COMPONENTS:

        def ready_pods(component: str = component) -> list[Any]:
            return [p for p in cluster.pods(component) if Cluster.ready(p)]

        assert cluster.wait(f"{component} ready", ready_pods, timeout=600), component
    kafka = cast(
        dict[str, Any],
        cluster.custom.get_namespaced_custom_object(
            "kafka.strimzi.io", "v1", cluster.namespace, "kafkas", f"{cluster.fullname}-kafka"
        ),
    )
    conditions = {c["type"]: c["status"] for c in kafka.get("status", {}).get("conditions", [])}
    assert conditions.get("Ready") == "True", conditions
    topics = cast(
        dict[str, Any],
        cluster.custom.list_namespaced_custom_object(
            "kafka.strimzi.io", "v1", cluster.namespace, "kafkatopics"
        ),
    )
    partitions = {t["spec"].get("topicName"): t["spec"].get("partitions") for t in topics["items"]}
    assert {"visits", "processed_visits"} <= set(partitions)
    # Equal counts (the observer owning partition p of processed_visits reports visits' partition p),
    # and enough of them that 3 observer replicas all get work.
    assert partitions["visits"] == partitions["processed_visits"] == 6, partitions


def _window_documents(cluster: Cluster) -> list[dict[str, Any]]:
    cluster.elasticsearch("POST", f"{INDEX}/_refresh")
    body = {"size": 10000, "query": {"term": {"doc_type": "window"}}}
    hits = cluster.elasticsearch("POST", f"{INDEX}/_search", body)["hits"]["hits"]
    return [{"_id": h["_id"], **h["_source"]} for h in hits]


def test_observation_documents_arrive(cluster: Cluster) -> None:
    docs = cluster.wait("window observation documents", lambda: _window_documents(cluster), timeout=600)
    assert all(d["all_events"] > 0 for d in docs)
    assert {"invalid_event_time", "invalid_user_id", "invalid_page"} <= set(docs[0])


def test_latency_toggled_by_helm_upgrade_flips_the_sla_alert(cluster: Cluster) -> None:
    started = time.monotonic()
    cluster.helm_upgrade(**{"visitsWriter.settings.simulated_latency_seconds": "15"})
    cluster.wait("SLA alert pending", lambda: cluster.alert_state(SLA_ALERT) in {"pending", "firing"}, 900)
    pending = time.monotonic() - started
    cluster.wait("SLA alert firing", lambda: cluster.alert_state(SLA_ALERT) == "firing", 600)
    firing = time.monotonic() - started
    cluster.helm_upgrade(**{"visitsWriter.settings.simulated_latency_seconds": "0"})
    cluster.wait("SLA alert resolved", lambda: cluster.alert_state(SLA_ALERT) == "inactive", 900)
    resolved = time.monotonic() - started
    print(
        f"SLA alert: pending after {pending:.0f}s, firing after {firing:.0f}s, resolved after {resolved:.0f}s"
    )


def test_observer_scales_to_three_without_duplicate_observations(cluster: Cluster) -> None:
    before = len(_window_documents(cluster))
    cluster.scale("observer", 3)
    try:
        cluster.wait(
            "3 observer replicas ready",
            lambda: len([p for p in cluster.pods("observer") if Cluster.ready(p)]) == 3,
            timeout=600,
        )
        cluster.wait(
            "new windows after the rebalance", lambda: len(_window_documents(cluster)) > before + 4, 600
        )
        docs = _window_documents(cluster)
        # Every offset of every partition is observed by exactly one window document.
        ranges: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
        for d in docs:
            ranges[(d["topic"], d["partition"])].append((d["start_offset"], d["end_offset"]))
        for key, spans in ranges.items():
            spans.sort()
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start > end, f"{key}: overlapping windows {spans}"
        # 6 partitions: every one of the 3 replicas owns 2 and writes windows (none idles).
        pods = {p.metadata.name for p in cluster.pods("observer") if Cluster.ready(p)}
        cluster.wait(
            "windows from every observer replica",
            lambda: pods <= {d["replica"] for d in _window_documents(cluster)},
            timeout=600,
        )
        # A later `helm upgrade --reuse-values` must not undo `kubectl scale` (the chart renders no
        # replicas unless observer.replicas is set).
        cluster.helm_upgrade(**{"logging.level": "INFO"})
        name = f"{cluster.fullname}-observer"
        deployment = cluster.apps.read_namespaced_deployment(name, cluster.namespace)
        assert deployment.spec.replicas == 3, "helm upgrade reset the scaled observer"
    finally:
        cluster.scale("observer", 1)


def _restarts(cluster: Cluster) -> dict[str, int]:
    return {
        pod.metadata.name: sum(c.restart_count for c in pod.status.container_statuses or [])
        for component in ("generator", "visits-writer", "passthrough", "observer")
        for pod in cluster.pods(component)
    }


def test_broker_restart_every_service_recovers_without_crash_loops(cluster: Cluster) -> None:
    """The durable-broker half of the scaling issue: the in-memory test broker cannot prove it."""
    restarts_before = _restarts(cluster)
    windows_before = len(_window_documents(cluster))
    selector = f"strimzi.io/cluster={cluster.fullname}-kafka,strimzi.io/broker-role=true"

    def broker_pods() -> list[Any]:
        return list(cluster.core.list_namespaced_pod(cluster.namespace, label_selector=selector).items)

    brokers = broker_pods()
    assert brokers, f"no broker pods match {selector}"
    old = {p.metadata.uid for p in brokers}
    started = time.monotonic()
    for pod in brokers:
        cluster.core.delete_namespaced_pod(pod.metadata.name, cluster.namespace)

    def broker_back() -> bool:
        pods = broker_pods()
        return bool(pods) and all(p.metadata.uid not in old and Cluster.ready(p) for p in pods)

    cluster.wait("broker pod replaced and ready", broker_back, timeout=600)
    broker_ready = time.monotonic() - started
    cluster.wait(
        "observations after the broker restart",
        lambda: len(_window_documents(cluster)) > windows_before + 2,
        timeout=600,
    )
    recovered = time.monotonic() - started
    print(f"broker restart: broker ready after {broker_ready:.0f}s, observing again after {recovered:.0f}s")
    restarts_after = _restarts(cluster)
    for name, count in restarts_after.items():
        assert count - restarts_before.get(name, 0) <= 1, f"{name} restarted repeatedly: crash loop"
    for pod in cluster.pods():
        for status in pod.status.container_statuses or []:
            waiting = status.state.waiting
            assert not (waiting and waiting.reason == "CrashLoopBackOff"), f"{pod.metadata.name} crash-loops"
