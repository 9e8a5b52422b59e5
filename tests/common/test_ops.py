"""The ops server over real HTTP: liveness, readiness decided by the service, Prometheus metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from streamwatch_common.ops import OpsServer


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def ready() -> threading.Event:
    return threading.Event()


@pytest.fixture
def server(registry: CollectorRegistry, ready: threading.Event) -> Iterator[OpsServer]:
    ops = OpsServer("127.0.0.1", 0, ready=ready.is_set, registry=registry).start()
    yield ops
    ops.stop()


def url(server: OpsServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def test_readiness_goes_from_503_to_200(server: OpsServer, ready: threading.Event) -> None:
    assert httpx.get(url(server, "/healthz")).status_code == 200
    assert httpx.get(url(server, "/readyz")).status_code == 503
    ready.set()
    assert httpx.get(url(server, "/readyz")).status_code == 200
    assert httpx.get(url(server, "/readyz?verbose=1")).status_code == 200
    ready.clear()
    assert httpx.get(url(server, "/readyz")).status_code == 503


def test_metrics_serve_the_registry(server: OpsServer, registry: CollectorRegistry) -> None:
    counter = Counter("demo_things_total", "things", ["kind"], registry=registry)
    counter.labels(kind="a").inc(3)
    response = httpx.get(url(server, "/metrics"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'demo_things_total{kind="a"} 3.0' in response.text


def test_unknown_path_is_404(server: OpsServer) -> None:
    assert httpx.get(url(server, "/nothing")).status_code == 404


def test_a_failing_readiness_check_means_not_ready(registry: CollectorRegistry) -> None:
    def broken() -> bool:
        raise RuntimeError("cannot tell")

    from streamwatch_common.ops import READINESS_CHECK_FAILURES

    before = READINESS_CHECK_FAILURES._value.get()
    ops = OpsServer("127.0.0.1", 0, ready=broken, registry=registry).start()
    try:
        assert httpx.get(url(ops, "/readyz")).status_code == 503
        assert httpx.get(url(ops, "/healthz")).status_code == 200
        assert READINESS_CHECK_FAILURES._value.get() == before + 1
    finally:
        ops.stop()
