"""Concurrent uploads: every one stored, the index consistent with the files on disk."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from profile_publisher.publisher_client import Publisher, make_report, window_params


def _post(publisher: Publisher, body: bytes, params: dict[str, Any]) -> httpx.Response:
    # One client per thread: 20 real connections at once, not 20 requests queued on one.
    with httpx.Client(base_url=publisher.url, timeout=60) as client:
        return client.post(
            "/api/reports",
            params=params,
            content=body,
            headers={"Authorization": f"Bearer {publisher.token}", "Content-Type": "text/html"},
        )


def test_twenty_concurrent_uploads_all_stored_and_indexed(start_publisher: Callable[..., Publisher]) -> None:
    publisher = start_publisher()
    bodies = [make_report(f"concurrent-{i}", size=50_000 + 97 * i) for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(
            pool.map(
                lambda i: _post(publisher, bodies[i], window_params(i, key=f"c{i}", replica=f"obs-{i % 3}")),
                range(20),
            )
        )
    assert [r.status_code for r in responses] == [201] * 20
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == 20

    listed = {r["id"]: r for r in publisher.reports()}
    assert set(listed) == set(ids)
    for report_id, body in zip(ids, bodies, strict=True):
        assert listed[report_id]["sha256"] == hashlib.sha256(body).hexdigest()
        assert publisher.client.get(f"/reports/{report_id}").content == body
    assert publisher.stored_files() == sorted(f"{i}.{ext}" for i in ids for ext in ("html", "json"))
    assert publisher.metric("profile_publisher_reports") == 20
    assert publisher.metric("profile_publisher_stored_bytes") == sum(len(b) for b in bodies)
    assert set(publisher.indexed_docs()) == set(ids)


def test_concurrent_retries_of_one_key_make_one_report(start_publisher: Callable[..., Publisher]) -> None:
    publisher = start_publisher(search_enabled=False)
    bodies = [make_report(f"attempt-{i}", size=30_000) for i in range(8)]
    params = window_params(0, key="observer-1/window-7")
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda body: _post(publisher, body, params), bodies))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 7 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    (report,) = publisher.reports()
    served = publisher.client.get(report["url"]).content
    assert served in bodies, "one complete attempt, never a mix of two"
    assert report["sha256"] == hashlib.sha256(served).hexdigest()
    assert len(publisher.stored_files()) == 2
