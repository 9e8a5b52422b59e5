"""The report index on a single Elasticsearch node: with ``ELASTICSEARCH_INDEX_REPLICAS=0`` (what the chart
sets for its bundled single node) the publisher creates it without a replica, green; an index made
before the setting (the cluster's default of one replica: yellow forever on one node) gets the count."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from profile_publisher.publisher_client import Publisher, make_report, window_params

from streamwatch_dev.elasticsearch import ElasticsearchNode
from streamwatch_dev.process import wait_until


def _replicas_and_health(node: ElasticsearchNode, index: str) -> tuple[str, str]:
    settings = node.request("GET", f"/{index}/_settings")[index]["settings"]["index"]
    return settings["number_of_replicas"], node.request("GET", f"/_cluster/health/{index}")["status"]


def _publish_one(publisher: Publisher) -> None:
    response = publisher.upload(make_report("r"), window_params(0))
    assert response.status_code == 201, response.text
    assert len(publisher.indexed_docs()) == 1


def test_the_publisher_creates_its_index_without_replicas_on_one_node(
    start_publisher: Callable[..., Publisher], elasticsearch: ElasticsearchNode
) -> None:
    publisher = start_publisher(ELASTICSEARCH_INDEX_REPLICAS="0")
    _publish_one(publisher)
    wait_until(
        lambda: _replicas_and_health(elasticsearch, publisher.index) == ("0", "green"), 30, what="green"
    )


def test_an_index_made_before_gets_the_replica_count(
    start_publisher: Callable[..., Publisher], elasticsearch: ElasticsearchNode
) -> None:
    index = f"profiles-{secrets.token_hex(4)}"
    elasticsearch.request("PUT", f"/{index}")
    assert _replicas_and_health(elasticsearch, index) == ("1", "yellow")
    publisher = start_publisher(index=index, ELASTICSEARCH_INDEX_REPLICAS="0")
    _publish_one(publisher)
    wait_until(lambda: _replicas_and_health(elasticsearch, index) == ("0", "green"), 30, what="green")
