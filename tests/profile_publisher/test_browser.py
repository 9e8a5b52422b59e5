"""The index page as a user sees it: headless Chromium renders it, follows a link, takes a screenshot."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

from profile_publisher.publisher_client import Publisher, make_report, window_params

CHROMIUM = "/usr/bin/chromium"


def chromium(*args: str, timeout: float = 90) -> str:
    """Run headless Chromium once with a throw-away profile; returns its stdout."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class _Rows(HTMLParser):
    """Report rows (id, link) in document order, and the page's visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.row_ids: list[str] = []
        self.links: list[str] = []
        self.previous_links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "tr" and "report" in classes:
            self.row_ids.append(attributes["data-report-id"] or "")
        if tag == "a" and "report-link" in classes:
            self.links.append(attributes["href"] or "")
        if tag == "a" and "previous-link" in classes:
            self.previous_links.append(attributes["href"] or "")

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())


def test_index_page_in_a_real_browser(start_publisher: Callable[..., Publisher], output_dir: Path) -> None:
    publisher = start_publisher(search_enabled=False, PROFILE_PUBLISHER_RETENTION_MAX_REPORTS="500")
    no_drift: dict[str, str] = {}
    uploads = [
        ("passthrough", "0,1", 12_840, "observer-0", no_drift),
        ("passthrough", "2,3", 13_112, "observer-1", no_drift),
        ("passthrough", "0,1,2,3", 25_952, "observer-0", no_drift),
        # The next window of partitions 0,1 drifted from the first one: its row links that report.
        ("passthrough", "0,1", 12_990, "observer-0", {"drift_field": "page", "drift_max": "0.4412"}),
    ]
    ids = []
    for i, (job, partitions, rows, replica, drift) in enumerate(uploads):
        params = window_params(
            5 * i, job=job, partitions=partitions, rows=rows, replica=replica, key=f"w{i}", **drift
        )
        response = publisher.upload(make_report(f"profile-{i}", size=150_000 + 40_000 * i), params)
        assert response.status_code == 201
        ids.append(response.json()["id"])

    page = _Rows()
    page.feed(chromium("--dump-dom", f"{publisher.url}/"))
    assert page.row_ids == ids[::-1], "newest first in the rendered DOM"
    assert page.links == [f"/reports/{i}" for i in ids[::-1]]
    text = " ".join(page.text)
    assert "Dataset profile reports" in text
    assert "25,952" in text and "observer-1" in text and "2026-11-22 18:10:00" in text
    assert "0.44" in text and "page" in text, "the drifted report's score and field are shown"
    assert f"/reports/{ids[0]}" in page.previous_links, "the drifted report links its reference"

    report_dom = chromium("--dump-dom", publisher.url + page.links[0])
    assert '<h1 id="label">profile-3</h1>' in report_dom
    assert "Zürich · naïve · ✓ · 東京" in report_dom

    screenshot = output_dir / "index.png"
    chromium(f"--screenshot={screenshot}", "--window-size=1280,900", "--hide-scrollbars", f"{publisher.url}/")
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000

    # Pagination works without JavaScript: plain links between pages of the same order.
    first, second = _Rows(), _Rows()
    first.feed(publisher.client.get("/", params={"limit": 2}).text)
    second.feed(publisher.client.get("/", params={"limit": 2, "page": 2}).text)
    assert first.row_ids + second.row_ids == ids[::-1]
    assert 'rel="next" href="/?page=2&amp;limit=2"' in publisher.client.get("/?limit=2").text
    api = publisher.client.get("/api/reports", params={"limit": 2, "offset": 2}).json()
    assert (api["total"], [r["id"] for r in api["reports"]]) == (4, [ids[1], ids[0]])
