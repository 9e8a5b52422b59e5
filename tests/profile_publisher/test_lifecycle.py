"""Restarts, search outages and SIGTERM: nothing stored is lost, nothing in flight is cut off."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from profile_publisher.publisher_client import Publisher, make_report, window_params

from streamwatch_dev.process import wait_until
from streamwatch_dev.search import SearchServer


def test_reports_and_index_survive_a_restart(
    start_publisher: Callable[..., Publisher], output_dir: Path
) -> None:
    store = output_dir / "store"
    publisher = start_publisher(store_dir=store, search_enabled=False)
    bodies = {f"k{i}": make_report(f"persisted-{i}", size=8000 + i) for i in range(3)}
    for i, (key, body) in enumerate(bodies.items()):
        assert publisher.upload(body, window_params(5 * i, key=key)).status_code == 201
    before = publisher.reports()
    assert publisher.stop() == 0, "SIGTERM is a clean stop"
    assert publisher.process.events("http_server_stopped")

    # What a crash could leave behind: an unfinished upload and a report file without metadata.
    reports_dir = store / "reports"
    (reports_dir / ".tmp-0123456789abcdef.html").write_bytes(b"<html>half")
    (reports_dir / ("a" * 32 + ".html")).write_bytes(b"<html>orphan</html>")

    restarted = start_publisher(store_dir=store, search_enabled=False)
    assert restarted.reports() == before
    for report, body in zip(before, reversed(bodies.values()), strict=True):
        assert restarted.client.get(report["url"]).content == body
    assert restarted.stored_files() == sorted(f"{r['id']}.{ext}" for r in before for ext in ("html", "json"))
    assert restarted.metric("profile_publisher_reports") == 3
    # The idempotency key still maps to the same report after the restart.
    again = restarted.upload(make_report("persisted-0-retry"), window_params(0, key="k0"))
    assert again.status_code == 200
    assert again.json()["id"] == before[-1]["id"]


@pytest.mark.osmem
def test_search_outage_never_fails_uploads_and_metadata_catches_up(
    start_publisher: Callable[..., Publisher], search: SearchServer, output_dir: Path
) -> None:
    store = output_dir / "store"
    publisher = start_publisher(store_dir=store)
    search.go_down()
    try:
        during = publisher.upload(make_report("during-outage"), window_params(0))
        assert during.status_code == 201
        wait_until(
            lambda: (publisher.metric("profile_publisher_index_failures_total") or 0) >= 2,
            20,
            what="failed index writes being retried",
        )
        assert publisher.metric("profile_publisher_index_pending") == 1
    finally:
        search.come_back()
    # Back-off retries reach the search server once it is back, without a restart.
    assert set(publisher.indexed_docs()) == {during.json()["id"]}

    search.go_down()
    try:
        queued = publisher.upload(make_report("queued-over-restart"), window_params(5))
        assert queued.status_code == 201
        assert len(list((store / "pending").glob("*.json"))) == 1, "pending metadata is on the volume"
        assert publisher.stop() == 0
    finally:
        search.come_back()
    restarted = start_publisher(store_dir=store, index=publisher.index)
    docs = restarted.indexed_docs()
    assert set(docs) == {during.json()["id"], queued.json()["id"]}
    assert docs[queued.json()["id"]]["report_url"] == f"{publisher.url}{queued.json()['url']}"
    assert list((store / "pending").glob("*.json")) == []
    assert restarted.process.events("index_write_failed") == []


def test_sigterm_lets_an_upload_in_flight_finish(
    start_publisher: Callable[..., Publisher], output_dir: Path
) -> None:
    store = output_dir / "store"
    publisher = start_publisher(store_dir=store, search_enabled=False)
    first_chunk_sent = threading.Event()
    pieces = [make_report("slow", size=40_000)[i : i + 4000] for i in range(0, 40_000, 4000)]

    def slow_body() -> Iterator[bytes]:
        for piece in pieces:
            yield piece
            first_chunk_sent.set()
            time.sleep(0.2)

    result: dict[str, httpx.Response] = {}

    def send() -> None:
        with httpx.Client(base_url=publisher.url, timeout=30) as client:
            result["response"] = client.post(
                "/api/reports",
                params=window_params(0, key="slow"),
                content=slow_body(),
                headers={"Authorization": f"Bearer {publisher.token}", "Content-Type": "text/html"},
            )

    sender = threading.Thread(target=send)
    sender.start()
    assert first_chunk_sent.wait(10)
    time.sleep(0.3)
    publisher.process.signal(signal.SIGTERM)
    sender.join(30)
    response = result["response"]
    assert response.status_code == 201, response.text
    assert publisher.process.wait(20) == 0
    events = [r["event"] for r in publisher.process.log_records()]
    assert events.index("report_stored") < events.index("http_server_stopped")

    restarted = start_publisher(store_dir=store, search_enabled=False)
    assert restarted.client.get(response.json()["url"]).content == b"".join(pieces)
