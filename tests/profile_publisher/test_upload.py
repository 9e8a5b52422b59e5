"""Uploads over real HTTP: stored byte-identical, listed newest first, indexed in search, idempotent."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from profile_publisher.publisher_client import Publisher, make_report, window_params


def test_three_reports_listed_fetched_byte_identical_and_indexed(
    start_publisher: Callable[..., Publisher],
) -> None:
    publisher = start_publisher()
    bodies = [make_report(f"report-{i}", size=20_000 + i) for i in range(3)]
    ids = []
    for i, body in enumerate(bodies):
        response = publisher.upload(
            body, window_params(5 * i, key=f"passthrough/0,1/{i}", replica=f"obs-{i}")
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["url"] == f"/reports/{created['id']}"
        assert response.headers["location"] == created["url"]
        ids.append(created["id"])
    assert len(set(ids)) == 3

    listed = publisher.reports()
    assert [r["id"] for r in listed] == ids[::-1], "newest first"
    for i, report in enumerate(reversed(listed)):
        assert report["job"] == "passthrough"
        assert report["partitions"] == [0, 1]
        assert report["replica"] == f"obs-{i}"
        assert report["rows"] == 1000 + 5 * i
        assert report["bytes"] == len(bodies[i])
        assert report["sha256"] == hashlib.sha256(bodies[i]).hexdigest()

    for report_id, body in zip(ids, bodies, strict=True):
        response = publisher.client.get(f"/reports/{report_id}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.content == body

    docs = publisher.indexed_docs()
    assert set(docs) == set(ids)
    for i, report_id in enumerate(ids):
        doc = docs[report_id]
        params = window_params(5 * i)
        assert doc["report_id"] == report_id
        assert doc["report_url"] == f"{publisher.url}/reports/{report_id}"
        assert doc["job"] == "passthrough"
        assert doc["partitions"] == [0, 1]
        assert doc["rows"] == 1000 + 5 * i
        assert doc["replica"] == f"obs-{i}"
        assert doc["bytes"] == len(bodies[i])
        assert doc["@timestamp"].startswith(params["window_end"][:19])
        assert doc["window_start"].startswith(params["window_start"][:19])
    assert publisher.metric("profile_publisher_uploads_total", result="created") == 3
    assert publisher.metric("profile_publisher_reports") == 3
    assert publisher.metric("profile_publisher_stored_bytes") == sum(len(b) for b in bodies)
    assert publisher.metric("profile_publisher_index_writes_total", op="index") == 3


def test_same_key_replaces_the_report_under_the_same_id(start_publisher: Callable[..., Publisher]) -> None:
    publisher = start_publisher()
    first, second = make_report("attempt-1"), make_report("attempt-2", size=5000)
    # Shaped like the observer's keys, which grow with the number of partitions in one report.
    key = "passthrough_" + "_".join(f"p{p}-{p * 10_000}-{p * 10_000 + 9_999}" for p in range(24))
    params = window_params(0, key=key)
    created = publisher.upload(first, params)
    retried = publisher.upload(second, params)
    assert (created.status_code, retried.status_code) == (201, 200)
    assert created.json() == retried.json()
    other = publisher.upload(first, window_params(0))  # no key: a new report every time
    assert other.status_code == 201 and other.json()["id"] != created.json()["id"]

    listed = publisher.reports()
    assert len(listed) == 2
    assert publisher.client.get(created.json()["url"]).content == second
    assert publisher.metric("profile_publisher_uploads_total", result="replaced") == 1
    assert publisher.metric("profile_publisher_stored_bytes") == len(second) + len(first)
    docs = publisher.indexed_docs()
    assert docs[created.json()["id"]]["bytes"] == len(second)


def test_metadata_variants_accepted(start_publisher: Callable[..., Publisher]) -> None:
    publisher = start_publisher(search_enabled=False)
    params = window_params(0, partitions=None, window_end="2026-11-22 18:05:00+00:00")
    params["partitions"] = ["3", "1"]
    response = publisher.upload(b"<p>x</p>", params, content_type="TEXT/HTML")
    assert response.status_code == 201, response.text
    (report,) = publisher.reports()
    assert report["partitions"] == [1, 3]
    assert report["window_end"] == "2026-11-22T18:05:00.000000Z"
    assert publisher.client.get(report["url"]).headers["content-type"] == "text/html; charset=utf-8"
    latin = publisher.upload(
        "<p>café</p>".encode("latin-1"), window_params(1), content_type="text/html; charset=ISO-8859-1"
    )
    assert latin.status_code == 201
    fetched = publisher.client.get(latin.json()["url"])
    assert fetched.headers["content-type"] == "text/html; charset=iso-8859-1"
    assert fetched.text == "<p>café</p>"
