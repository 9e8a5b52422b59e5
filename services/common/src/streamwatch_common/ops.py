"""The ops HTTP server every long-running service starts: ``/healthz``, ``/readyz``, ``/metrics``.

Readiness is decided by the service through a callable; liveness only says the process serves HTTP.

Usage::

    server = OpsServer("0.0.0.0", 8080, ready=lambda: consumer_assigned.is_set())
    server.start()
    ...
    server.stop()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest

logger = logging.getLogger(__name__)

READINESS_CHECK_FAILURES = Counter(
    "streamwatch_readiness_check_failures_total",
    "Readiness checks that raised instead of answering (the probe then reports not ready).",
)


class OpsServer:
    """A small threaded HTTP server for probes and Prometheus scrapes."""

    def __init__(
        self,
        host: str,
        port: int,
        ready: Callable[[], bool] = lambda: True,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._ready = ready
        self._registry = registry
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="ops-http", daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful when 0 was asked for)."""
        return int(self._httpd.server_address[1])

    def start(self) -> OpsServer:
        self._thread.start()
        logger.info("ops_server_started", extra={"port": self.port})
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._send(200, b"ok\n", "text/plain; charset=utf-8")
                elif path == "/readyz":
                    try:
                        ready = server._ready()
                    except Exception:
                        READINESS_CHECK_FAILURES.inc()
                        logger.exception("readiness_check_failed")
                        ready = False
                    self._send(200 if ready else 503, b"ready\n" if ready else b"not ready\n", "text/plain")
                elif path == "/metrics":
                    self._send(200, generate_latest(server._registry), CONTENT_TYPE_LATEST)
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                # Probe traffic every few seconds would drown the service's own log lines.
                return

        return Handler
