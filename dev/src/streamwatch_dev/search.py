"""An Elasticsearch-API server for tests: osmem-server behind a media-type rewriting proxy.

Quirk: osmem answers 406 to ``application/vnd.elasticsearch+json; compatible-with=8``, which the
elasticsearch-py 8.x client always sends. The proxy rewrites those headers to the plain media types so
the unmodified client talks to it. The proxy can be stopped and started on the same port to simulate an
outage, and can add a delay to every request to simulate a slow cluster.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from streamwatch_dev.process import ComponentStartError, free_port

_COMPAT = {
    "application/vnd.elasticsearch+json": "application/json",
    "application/vnd.elasticsearch+x-ndjson": "application/x-ndjson",
}
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class SearchBackend(Protocol):
    """What tests need of an Elasticsearch-API server: osmem here or the real node (harness.elasticsearch)."""

    @property
    def url(self) -> str: ...

    def env(self) -> dict[str, str]:
        """The ``ELASTICSEARCH_*`` settings a service needs to reach it."""
        ...

    def all_docs(self, index: str, size: int = 10000) -> list[dict[str, Any]]: ...

    def docs_of_type(self, index: str, doc_type: str) -> list[dict[str, Any]]: ...


class IndexQueries:
    """Reading an index back, shared by the harness's search servers; each provides ``request``."""

    def request(self, method: str, path: str, body: Any = None) -> Any:
        raise NotImplementedError

    def refresh(self, index: str) -> None:
        self.request("POST", f"/{index}/_refresh")

    def all_docs(self, index: str, size: int = 10000) -> list[dict[str, Any]]:
        """Every document of an index with its ``_id`` (as ``_id`` key merged into the source)."""
        self.refresh(index)
        hits = self.request("POST", f"/{index}/_search", {"size": size, "query": {"match_all": {}}})
        return [{"_id": h["_id"], **h["_source"]} for h in hits["hits"]["hits"]]

    def docs_of_type(self, index: str, doc_type: str) -> list[dict[str, Any]]:
        """The observer's documents of one ``doc_type`` (window, lag); none before the index exists."""
        try:
            docs = self.all_docs(index)
        except RuntimeError:  # index not created yet
            return []
        return [d for d in docs if d.get("doc_type") == doc_type]


def _plain(value: str) -> str:
    media = value.split(";", 1)[0].strip().lower()
    return _COMPAT.get(media, value)


class _CompatProxy:
    def __init__(self, upstream_port: int, port: int) -> None:
        self.upstream_port = upstream_port
        self.port = port
        self.delay = 0.0
        self.requests = 0
        self.up = False
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                if not proxy.up:
                    # A kept-alive connection outlives the listener: drop it, as a dead server would.
                    self.close_connection = True
                    return
                proxy.requests += 1
                if proxy.delay:
                    time.sleep(proxy.delay)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: _plain(v) if k.lower() in ("content-type", "accept") else v
                    for k, v in self.headers.items()
                    if k.lower() not in _HOP_HEADERS
                }
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in _HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: object) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="es-proxy").start()
        self.up = True

    def stop(self) -> None:
        self.up = False
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


@dataclass
class SearchServer(IndexQueries):
    """osmem-server plus the compatibility proxy; ``url`` is what services and clients use."""

    process: subprocess.Popen[str]
    upstream_port: int
    proxy: _CompatProxy
    log_path: Path
    _stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    def env(self) -> dict[str, str]:
        return {"ELASTICSEARCH_URL": self.url}

    @classmethod
    def start(cls, log_dir: Path) -> SearchServer:
        from osmem_server import resolve_binary

        log_dir.mkdir(parents=True, exist_ok=True)
        upstream = free_port()
        log_path = log_dir / f"osmem-{upstream}.log"
        try:
            binary = resolve_binary()
        except Exception as exc:
            raise ComponentStartError(f"search server: {exc}") from exc
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [binary, "--addr", f"127.0.0.1:{upstream}", "--no-ja", "--no-stdin-watch"],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        proxy = _CompatProxy(upstream, free_port())
        server = cls(proc, upstream, proxy, log_path)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ComponentStartError(
                    f"search server exited with {proc.returncode}: {log_path.read_text()}"
                )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=2)
                conn.request("GET", "/")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            proc.kill()
            raise ComponentStartError(f"search server not ready in 30s: {log_path.read_text()[-2000:]}")
        proxy.start()
        return server

    # outage simulation ---------------------------------------------------------------------------
    def go_down(self) -> None:
        """Refuse connections until :meth:`come_back`."""
        self.proxy.stop()

    def come_back(self) -> None:
        self.proxy.start()

    def set_delay(self, seconds: float) -> None:
        self.proxy.delay = seconds

    def stop(self) -> None:
        self.proxy.stop()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    # direct queries (bypassing the proxy) ----------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        payload = None if body is None else json.dumps(body)
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 400:
            raise RuntimeError(f"search {method} {path}: {resp.status} {data[:500]!r}")
        return json.loads(data) if data else None
