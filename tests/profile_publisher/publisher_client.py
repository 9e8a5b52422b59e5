"""A client for the profile publisher under test, and the test data it uploads."""

from __future__ import annotations

import hashlib
import http.client
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from streamwatch_dev.process import wait_until
from streamwatch_dev.search import SearchBackend
from streamwatch_dev.services import ServiceProcess, metric_value

WINDOW_0 = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)


def make_report(label: str, size: int = 4096) -> bytes:
    """A distinct, deterministic HTML document of roughly ``size`` bytes, with non-ASCII text."""
    head = f"<!doctype html><html><head><meta charset='utf-8'><title>{label}</title></head><body>"
    head += f"<h1 id='label'>{label}</h1><p>Zürich · naïve · ✓ · 東京</p><pre>"
    tail = "</pre></body></html>"
    filler = hashlib.sha256(label.encode()).hexdigest()
    body_len = max(0, size - len((head + tail).encode()))
    return (head + (filler * (body_len // 64 + 1))[:body_len] + tail).encode()


def window_params(minute: int, **overrides: Any) -> dict[str, Any]:
    """Upload metadata for a five-minute window ``minute`` minutes after WINDOW_0."""
    start = WINDOW_0 + timedelta(minutes=minute)
    params: dict[str, Any] = {
        "job": "passthrough",
        "partitions": "0,1",
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(minutes=5)).isoformat(),
        "rows": 1000 + minute,
        "replica": "observer-0",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


@dataclass
class Publisher:
    """A running publisher and a small client for it."""

    process: ServiceProcess
    port: int
    store_dir: Path
    index: str
    token: str
    search: SearchBackend | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def upload(
        self,
        body: bytes | Iterator[bytes],
        params: dict[str, Any],
        *,
        token: str | None = "",
        content_type: str | None = "text/html; charset=utf-8",
    ) -> httpx.Response:
        """POST a report; ``token=""`` means the right token, None means no Authorization header."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.client.post("/api/reports", params=params, content=body, headers=headers)

    def reports(self, limit: int = 1000) -> list[dict[str, Any]]:
        response = self.client.get("/api/reports", params={"limit": limit})
        response.raise_for_status()
        reports: list[dict[str, Any]] = response.json()["reports"]
        return reports

    def raw_get(self, path: str) -> tuple[int, bytes]:
        """GET a path exactly as written (no client-side normalisation of ``..`` or escapes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.putrequest("GET", path, skip_accept_encoding=True)
            conn.endheaders()
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def metric(self, name: str, **labels: str) -> float | None:
        return metric_value(self.client.get("/metrics").text, name, **labels)

    def wait_indexed(self, timeout: float = 30) -> None:
        """Until every queued metadata write (index or delete) reached the search server."""
        wait_until(
            lambda: self.metric("profile_publisher_index_pending") == 0, timeout, what="index queue drained"
        )

    def indexed_docs(self) -> dict[str, dict[str, Any]]:
        """The search documents by id, once the metadata queue is drained."""
        assert self.search is not None, "started with search_enabled=False"
        search = self.search
        self.wait_indexed()
        try:
            docs = search.all_docs(self.index)
        except RuntimeError:  # the index is created with the first document
            return {}
        return {doc["_id"]: doc for doc in docs}

    def stored_files(self) -> list[str]:
        """Every file under the store's report directory (temporary ones included)."""
        reports_dir = self.store_dir / "reports"
        return sorted(os.listdir(reports_dir)) if reports_dir.exists() else []

    def stop(self) -> int | None:
        self.client.close()
        return self.process.stop()
