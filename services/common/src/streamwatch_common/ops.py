"""The ops endpoints every long-running service serves: ``/healthz``, ``/readyz``, ``/metrics``.

:func:`ops_answer` decides what each endpoint answers; :class:`OpsServer` serves it on its own port,
and a service with its own web app (the profile publisher) routes the same paths to the same function.
Readiness is decided by the service through a callable, usually a :class:`Readiness`; liveness only
says the process serves HTTP.

Usage::

    readiness = Readiness()
    readiness.check("consumer_assigned", consumer_assigned.is_set)
    server = OpsServer("0.0.0.0", 8080, ready=readiness).start()
    ...
    server.stop()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest

logger = logging.getLogger(__name__)

OPS_PATHS = ("/healthz", "/readyz", "/metrics")
_TEXT = "text/plain; charset=utf-8"

READINESS_CHECK_FAILURES = Counter(
    "streamwatch_readiness_check_failures_total",
    "Readiness checks that raised instead of answering (the probe then reports not ready).",
)


class Readiness:
    """Named conditions that must all hold for ``/readyz`` to answer 200.

    A condition is either a flag the service sets (:meth:`set`) or a check evaluated on every probe
    (:meth:`check`). A check that raises counts as not ready. Calling the object answers
    :attr:`ready`, so it can be passed wherever a ``ready`` callable is expected.

    Usage::

        readiness = Readiness()
        readiness.set("serving", False)
        readiness.check("store_writable", store.writable)
        readiness.set("serving", True)
        readiness.ready, readiness.reasons  # (True, []) once every condition holds
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conditions: dict[str, Callable[[], bool]] = {}

    def set(self, name: str, ok: bool) -> None:
        """Record a condition's current state (added if new)."""
        with self._lock:
            self._conditions[name] = (lambda: True) if ok else (lambda: False)

    def check(self, name: str, condition: Callable[[], bool]) -> None:
        """Make ``condition`` a named check, called on every probe."""
        with self._lock:
            self._conditions[name] = condition

    @property
    def reasons(self) -> list[str]:
        """Names of the conditions that do not hold now (empty: ready)."""
        with self._lock:
            conditions = list(self._conditions.items())
        return [name for name, condition in conditions if not _holds(name, condition)]

    @property
    def ready(self) -> bool:
        return not self.reasons

    def __call__(self) -> bool:
        return self.ready


def _holds(name: str, condition: Callable[[], bool]) -> bool:
    try:
        return bool(condition())
    except Exception:
        READINESS_CHECK_FAILURES.inc()
        logger.exception("readiness_check_failed", extra={"check": name})
        return False


@dataclass(frozen=True)
class OpsAnswer:
    """An ops endpoint's HTTP answer, independent of the server that sends it."""

    status: int
    body: bytes
    content_type: str


def ops_answer(
    path: str, ready: Callable[[], bool], registry: CollectorRegistry = REGISTRY
) -> OpsAnswer | None:
    """What ``GET path`` answers, or None when ``path`` (query string ignored) is not an ops path."""
    path = path.split("?", 1)[0]
    if path == "/healthz":
        return OpsAnswer(200, b"ok\n", _TEXT)
    if path == "/readyz":
        ok = _holds("ready", ready)
        return OpsAnswer(200 if ok else 503, b"ready\n" if ok else b"not ready\n", _TEXT)
    if path == "/metrics":
        return OpsAnswer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
    return None


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
                answer = ops_answer(self.path, server._ready, server._registry)
                if answer is None:
                    answer = OpsAnswer(404, b"not found\n", _TEXT)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: object) -> None:
                # Probe traffic every few seconds would drown the service's own log lines.
                return

        return Handler
