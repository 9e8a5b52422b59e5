"""The observation sink against a real Elasticsearch 8 node (basic auth): the index template gives the
declared field types, ids overwrite, a document the node refuses raises SinkError, and the Grafana
dashboard's aggregations, as Grafana sends them, count the written documents exactly."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from streamwatch_common.errors import SinkError
from streamwatch_dev.chart import render
from streamwatch_dev.elasticsearch import ElasticsearchNode
from streamwatch_observer.sink import MAPPINGS, ObservationSink

MINUTE = "2026-11-28T10:0{m}:30.000Z"


def window(partition: int, minute: int, start: int, **counts: int) -> tuple[str, dict[str, Any]]:
    """A window document shaped as the observer writes it (documents.window_document)."""
    doc: dict[str, Any] = {
        "@timestamp": MINUTE.format(m=minute),
        "observed_at": MINUTE.format(m=minute),
        "doc_type": "window",
        "job": "passthrough",
        "topic": "processed_visits",
        "source_topic": "visits",
        "partition": partition,
        "start_offset": start,
        "end_offset": start + 9,
        "window_start": MINUTE.format(m=minute),
        "window_end": MINUTE.format(m=minute),
        "all_events": 10,
        "unparseable": 0,
        "duplicates": 0,
        "invalid_records": 0,
        "invalid_event_time": 0,
        "invalid_user_id": 0,
        "invalid_page": 0,
        "null_counts": {"context__user__ip": 1},
        "null_counts_left_out": 0,
        "lag_per_partition": {"0": 3, "1": 0},
        "drift": {"page": 0.4412, "user_id": 0},
        "drift_max": 0.4412,
        "drift_reference": {"page": 0.3101, "user_id": 0},
        "drift_reference_max": 0.3101,
        "replica": "observer-0",
        "measure_seconds": 0.0123,
        **counts,
    }
    return f"passthrough-processed_visits-{partition}-{start}-{start + 9}", doc


def lag(partition: int, minute: int, offsets: int, job: str = "passthrough") -> tuple[str, dict[str, Any]]:
    """A lag document shaped as the observer writes it (documents.lag_document)."""
    doc = {
        "@timestamp": MINUTE.format(m=minute),
        "observed_at": MINUTE.format(m=minute),
        "doc_type": "lag",
        "job": job,
        "topic": "visits",
        "partition": partition,
        "status": "OK",
        "lag_offsets": offsets,
        "committed_offset": 100,
        "end_offset": 100 + offsets,
        "lag_seconds": None,
        "batch_id": 7,
        "evaluation": "ok",
        "replica": "observer-0",
    }
    return f"{job}-lag-{partition}-{minute}", doc


@pytest.fixture
def sink(elasticsearch: ElasticsearchNode) -> ObservationSink:
    sink = ObservationSink(elasticsearch.client(), f"obs-{secrets.token_hex(4)}")
    sink.ensure_template()
    return sink


def test_template_gives_every_declared_field_its_type(
    elasticsearch: ElasticsearchNode, sink: ObservationSink
) -> None:
    sink.ensure_template()  # idempotent: a restarted observer puts it again
    sink.write([window(0, 0, 0), lag(0, 0, 3)])
    mapping = elasticsearch.request("GET", f"/{sink.index}/_mapping")[sink.index]["mappings"]
    properties = mapping["properties"]
    for name, declared in MAPPINGS["properties"].items():
        if declared["type"] == "object":
            assert "properties" in properties[name], name
        else:
            assert properties[name]["type"] == declared["type"], name
    # Dynamic sub-fields of the objects: counts become longs, so sums and maxima work on them.
    assert properties["null_counts"]["properties"]["context__user__ip"]["type"] == "long"
    assert properties["lag_per_partition"]["properties"]["0"]["type"] == "long"
    # Drift scores are doubles even when the first score a field gets is a whole 0.
    for scores in ("drift", "drift_reference"):
        assert {f: properties[scores]["properties"][f]["type"] for f in ("page", "user_id")} == {
            "page": "double",
            "user_id": "double",
        }, scores
    template = elasticsearch.request("GET", f"/_index_template/{sink.index}")["index_templates"][0]
    assert template["index_template"]["index_patterns"] == [sink.index]


def _durability(elasticsearch: ElasticsearchNode, index: str) -> str:
    settings = elasticsearch.request("GET", f"/{index}/_settings?include_defaults=true")[index]
    found = settings["settings"]["index"].get("translog") or settings["defaults"]["index"]["translog"]
    return str(found["durability"]).lower()


def test_only_the_reference_index_syncs_its_log_asynchronously_even_when_made_before(
    elasticsearch: ElasticsearchNode,
) -> None:
    index = f"obs-{secrets.token_hex(4)}"
    made_before = ObservationSink(elasticsearch.client(), index).reference_index
    elasticsearch.request("PUT", f"/{made_before}")  # as an older release left it: no template setting
    assert _durability(elasticsearch, made_before) == "request"
    sink = ObservationSink(elasticsearch.client(), index)
    sink.ensure_template()
    sink.write([window(0, 0, 0)])
    assert sink.put_reference(f"{index}-ref", {"partition": 0}, None)
    assert _durability(elasticsearch, sink.reference_index) == "async"
    # The observations keep Elasticsearch's per-request sync: their offsets are committed after the write.
    assert _durability(elasticsearch, sink.index) == "request"


def test_template_maps_one_invalid_count_per_configured_required_field(
    elasticsearch: ElasticsearchNode,
) -> None:
    sink = ObservationSink(
        elasticsearch.client(), f"obs-{secrets.token_hex(4)}", ["user_id", "context.user.ip"]
    )
    sink.ensure_template()
    template = elasticsearch.request("GET", f"/_index_template/{sink.index}")["index_templates"][0]
    properties = template["index_template"]["template"]["mappings"]["properties"]
    invalid = {name for name in properties if name.startswith("invalid_")}
    # invalid_records counts records; the others are the configured fields, named as the documents name them.
    assert invalid == {"invalid_records", "invalid_user_id", "invalid_context__user__ip"}
    assert properties["invalid_context__user__ip"]["type"] == "long"


def test_ids_overwrite_and_last_end_offsets_per_partition(
    elasticsearch: ElasticsearchNode, sink: ObservationSink
) -> None:
    assert sink.last_end_offsets("passthrough", "processed_visits", [0, 1]) == {}  # no index yet
    docs = [window(0, 0, 0), window(0, 1, 10), window(1, 0, 0), lag(0, 0, 3)]
    sink.write(docs)
    sink.write(docs[:2])  # a replay after a crash before the commit
    elasticsearch.refresh(sink.index)
    client = elasticsearch.client()
    assert client.count(index=sink.index)["count"] == 4
    assert client.get(index=sink.index, id=docs[0][0])["_version"] == 2
    offsets = sink.last_end_offsets("passthrough", "processed_visits", [0, 1, 2])
    assert offsets == {0: 19, 1: 9}


def test_document_refused_by_the_node_raises_sink_error(sink: ObservationSink) -> None:
    doc_id, doc = window(0, 0, 0)
    doc["end_offset"] = "not-a-number"  # the template maps it as long: a real node refuses the document
    with pytest.raises(SinkError, match=rf"1 of 2 documents refused, first: {doc_id}:.*end_offset"):
        sink.write([(doc_id, doc), window(1, 0, 0)])


def test_wrong_password_raises_sink_error(elasticsearch: ElasticsearchNode) -> None:
    client = Elasticsearch(elasticsearch.url, basic_auth=("elastic", "not-the-password"), request_timeout=10)
    sink = ObservationSink(client, f"obs-{secrets.token_hex(4)}")
    with pytest.raises(SinkError, match="401"):
        sink.ensure_template()
    with pytest.raises(SinkError):
        sink.write([window(0, 0, 0)])


# Grafana's Elasticsearch datasource -------------------------------------------------------------------
def grafana_request(target: dict[str, Any]) -> dict[str, Any]:
    """The search body Grafana 11's Elasticsearch datasource builds from a panel target (8.x syntax)."""
    time_field = target["timeField"]
    body: dict[str, Any] = {
        "size": 0,
        "query": {
            "bool": {
                "filter": [
                    {"range": {time_field: {"gte": "2026-11-28T10:00:00Z", "lte": "2026-11-28T10:09:59Z"}}},
                    {"query_string": {"analyze_wildcard": True, "query": target["query"]}},
                ]
            }
        },
    }
    metrics = {m["id"]: {m["type"]: {"field": m["field"]}} for m in target["metrics"]}
    level = body
    for agg in target["bucketAggs"]:
        settings = agg.get("settings", {})
        if agg["type"] == "terms":
            order_by = "_key" if settings["orderBy"] == "_term" else settings["orderBy"]
            spec: dict[str, Any] = {
                "field": agg["field"],
                "size": int(settings["size"]),
                "min_doc_count": int(settings["min_doc_count"]),
                "order": {order_by: settings["order"]},
            }
        else:
            spec = {
                "field": agg["field"],
                "fixed_interval": settings["interval"],
                "min_doc_count": int(settings["min_doc_count"]),
                "format": "epoch_millis",
            }
        level["aggs"] = {agg["id"]: {agg["type"]: spec}}
        level = level["aggs"][agg["id"]]
    level["aggs"] = metrics
    return body


def dashboard_targets() -> dict[str, dict[str, Any]]:
    dashboards = {
        name: json.loads(text)
        for doc in render()
        if doc.get("kind") == "ConfigMap"
        for name, text in (doc.get("data") or {}).items()
        if name == "observation.json"
    }
    return {
        panel["title"]: panel["targets"][0]
        for panel in dashboards["observation.json"]["panels"]
        if panel["targets"][0].get("bucketAggs")
    }


def test_dashboard_aggregations_count_the_written_documents(
    elasticsearch: ElasticsearchNode, sink: ObservationSink
) -> None:
    sink.write(
        [
            window(0, 0, 0, invalid_page=2, duplicates=1),
            window(0, 0, 10, invalid_page=1),
            window(1, 0, 0, unparseable=3),
            window(0, 2, 20, invalid_user_id=4),
            lag(0, 0, 3),
            lag(0, 1, 8),
            lag(1, 1, 0),
            lag(0, 0, 40, job="sessions"),
        ]
    )
    elasticsearch.refresh(sink.index)
    client = elasticsearch.client()
    targets = dashboard_targets()

    def run(title: str) -> dict[str, Any]:
        return dict(client.search(index=sink.index, **grafana_request(targets[title]))["aggregations"])

    # Invalid records per minute: one date histogram, sums per minute (empty minute 1 is a 0 bucket).
    buckets = run("Invalid records per minute")["10"]["buckets"]
    assert [b["doc_count"] for b in buckets] == [3, 0, 1]
    assert [(b["1"]["value"], b["2"]["value"], b["3"]["value"]) for b in buckets] == [
        (0.0, 0.0, 3.0),
        (0.0, 0.0, 0.0),
        (0.0, 4.0, 0.0),
    ]
    assert [(b["4"]["value"], b["5"]["value"]) for b in buckets] == [(3.0, 1.0), (0.0, 0.0), (0.0, 0.0)]
    # Records observed per minute, per partition (terms on the integer field, then minutes).
    per_partition = {
        b["key"]: [m["1"]["value"] for m in b["3"]["buckets"]]
        for b in run("Records observed per minute")["2"]["buckets"]
    }
    assert per_partition == {0: [20.0, 0.0, 10.0], 1: [10.0]}
    # Lag per partition: the maximum lag of each minute; only lag documents count.
    lag_panel = next(title for title in targets if title.startswith("Lag per partition"))
    # One line per job and partition: a watched job's lag never mixes into the passthrough's.
    per_job = {
        j["key"]: {b["key"]: [m["1"]["value"] for m in b["3"]["buckets"]] for b in j["2"]["buckets"]}
        for j in run(lag_panel)["4"]["buckets"]
    }
    assert per_job == {"passthrough": {0: [3.0, 8.0], 1: [0.0]}, "sessions": {0: [40.0]}}
