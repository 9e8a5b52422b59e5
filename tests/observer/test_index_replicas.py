"""The observation index on a single Elasticsearch node: with ``ELASTICSEARCH_INDEX_REPLICAS=0`` (what the
chart sets for its bundled single node) it has no replica and is green; with the cluster's default of one
replica it stays yellow forever, as the first kind install found. An index made before the setting gets
the count when the observer starts, since a template shapes new indices only."""

from __future__ import annotations

import secrets
from pathlib import Path

from streamwatch_dev.elasticsearch import ElasticsearchNode
from streamwatch_dev.process import wait_until
from streamwatch_dev.services import ServiceProcess, service_env
from streamwatch_observer.sink import ObservationSink


def _replicas_and_health(node: ElasticsearchNode, index: str) -> tuple[str, str]:
    settings = node.request("GET", f"/{index}/_settings")[index]["settings"]["index"]
    health = node.request("GET", f"/_cluster/health/{index}")
    return settings["number_of_replicas"], health["status"]


def _green(node: ElasticsearchNode, index: str) -> bool:
    return _replicas_and_health(node, index) == ("0", "green")


def test_zero_replicas_make_the_index_green_on_one_node_and_the_default_does_not(
    elasticsearch: ElasticsearchNode,
) -> None:
    default = ObservationSink(elasticsearch.client(), f"obs-{secrets.token_hex(4)}")
    single = ObservationSink(elasticsearch.client(), f"obs-{secrets.token_hex(4)}", replicas=0)
    for sink in (default, single):
        sink.ensure_template()
        sink.write([("w-0", {"@timestamp": "2026-11-28T10:00:30Z", "doc_type": "window", "partition": 0})])
    wait_until(lambda: _green(elasticsearch, single.index), 30, what="observation index green")
    # The contrast: one replica that a single node can never place.
    assert _replicas_and_health(elasticsearch, default.index) == ("1", "yellow")


def test_the_observer_gives_an_existing_index_the_replica_count_at_start(
    elasticsearch: ElasticsearchNode, output_dir: Path
) -> None:
    index = f"obs-{secrets.token_hex(4)}"
    elasticsearch.request("PUT", f"/{index}")  # made by an earlier release, with the default replica
    assert _replicas_and_health(elasticsearch, index) == ("1", "yellow")
    # The template is put before Kafka is used: an unreachable broker keeps the observer waiting there.
    env = service_env(
        **elasticsearch.env(),
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
        OBSERVER_INDEX=index,
        OBSERVER_PROFILE_ENABLED="false",
        OBSERVER_CHECKPOINT_PATH=str(output_dir / "checkpoint"),
        ELASTICSEARCH_INDEX_REPLICAS="0",
    )
    observer = ServiceProcess("streamwatch-observer", output_dir / "observer.log", env)
    observer.start()
    try:
        # One template per index the observer writes (observations, drift references), each logged.
        ready = observer.wait_for_event("index_template_ready", timeout=60, count=2)
        assert {(e["index"], e["replicas"]) for e in ready} == {(index, 0), (f"{index}_drift_reference", 0)}
        wait_until(lambda: _green(elasticsearch, index), 30, what="existing index green")
        template = elasticsearch.request("GET", f"/_index_template/{index}")["index_templates"][0]
        assert template["index_template"]["template"]["settings"]["index"]["number_of_replicas"] == "0"
    finally:
        observer.stop()
