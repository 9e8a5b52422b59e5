"""The harness's real components answer as the rest of the suite expects."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from elasticsearch import AuthenticationException, Elasticsearch

from streamwatch_dev.elasticsearch import ElasticsearchNode
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import ComponentStartError
from streamwatch_dev.prometheus import Prometheus, Pushgateway
from streamwatch_dev.search import SearchServer


def test_broker_round_trip_with_exact_watermarks(kafka: KafkaBroker) -> None:
    topic = kafka.create_topic(partitions=2)
    kafka.produce(topic, [(b"k%d" % i, b"v%d" % i) for i in range(10)], partition=1)
    assert kafka.end_offsets(topic) == {0: 0, 1: 10}
    values = sorted(m.value() or b"" for m in kafka.read_all(topic, expected=10))
    assert values == sorted(b"v%d" % i for i in range(10))


@pytest.mark.parametrize("crash", [False, True], ids=["clean-restart", "kill-restart"])
def test_broker_restart_keeps_topics_records_and_committed_offsets(crash: bool, output_dir: Path) -> None:
    broker = KafkaBroker.start(output_dir)  # its own broker: the session's keeps running
    try:
        topic = broker.create_topic(partitions=2)
        broker.produce(topic, [(None, b"v%d" % i) for i in range(7)], partition=0)
        consumer = broker.consumer("keeper")
        consumer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
        consumer.close()
        port = broker.port

        if crash:
            broker.kill()
        broker.restart()

        assert broker.port == port
        assert broker.end_offsets(topic) == {0: 7, 1: 0}
        assert [m.value() for m in broker.read_all(topic, expected=7)] == [b"v%d" % i for i in range(7)]
        consumer = broker.consumer("keeper")
        try:
            (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        finally:
            consumer.close()
        assert committed.offset == 5
    finally:
        broker.stop()


def test_missing_broker_jars_are_named_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_LIBS", str(tmp_path / "no-jars"))
    with pytest.raises(ComponentStartError, match=r"jars not found in .*no-jars \(run make deps"):
        KafkaBroker.start(tmp_path)


def test_elasticsearch_8_client_talks_to_search_server(search: SearchServer) -> None:
    client = Elasticsearch(search.url, request_timeout=10)
    client.index(index="harness-check", id="a", document={"x": 1}, refresh=True)
    client.bulk(operations=[{"index": {"_index": "harness-check", "_id": "b"}}, {"x": 2}], refresh=True)
    assert client.count(index="harness-check")["count"] == 2
    assert {d["_id"] for d in search.all_docs("harness-check")} == {"a", "b"}


def test_prometheus_scrapes_pushgateway(tmp_path: Path, pushgateway: Pushgateway) -> None:
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    Gauge("harness_check", "check", registry=registry).set(42)
    push_to_gateway(pushgateway.url.removeprefix("http://"), job="harness", registry=registry)
    prom = Prometheus.start(tmp_path, [], pushgateway=pushgateway.url)
    try:
        from streamwatch_dev.process import wait_until

        wait_until(lambda: prom.query('harness_check{job="harness"}'), 20, what="harness_check scraped")
        assert float(prom.query('harness_check{job="harness"}')[0]["value"][1]) == 42.0
    finally:
        prom.stop()


def test_real_elasticsearch_8_node_with_basic_auth(elasticsearch: ElasticsearchNode) -> None:
    nodes = elasticsearch.request("GET", "/_nodes/_local")["nodes"]
    (node,) = nodes.values()
    assert node["version"].startswith("8.")
    assert {m["name"] for m in node["modules"]} >= {"x-pack-core", "x-pack-security", "transport-netty4"}
    assert elasticsearch.request("GET", "/_security/_authenticate")["username"] == "elastic"
    with pytest.raises(RuntimeError, match="401"):
        elasticsearch.request("GET", "/_cluster/health", auth=False)
    wrong = Elasticsearch(elasticsearch.url, basic_auth=("elastic", "wrong-password"), request_timeout=10)
    with pytest.raises(AuthenticationException):
        wrong.count(index="*")
    client = elasticsearch.client()
    client.index(index="harness-check", id="a", document={"x": 1}, refresh=True)
    assert client.count(index="harness-check")["count"] == 1
