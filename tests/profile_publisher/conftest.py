"""Fixtures for the profile publisher tests: the real service as a subprocess, talking real HTTP.

``start_publisher(**env)`` starts the console script on a free loopback port with its own store
directory (or a given one, to test restarts) and a fresh index on the real Elasticsearch node (with
basic auth), or on osmem behind its proxy for tests marked ``osmem`` (outages); every publisher is
stopped at the end of the test. The search server starts only when a publisher needs it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from profile_publisher.publisher_client import Publisher

from streamwatch_dev.process import free_port
from streamwatch_dev.search import SearchBackend
from streamwatch_dev.services import ServiceProcess, service_env

SCRIPT = "streamwatch-profile-publisher"


@pytest.fixture
def start_publisher(output_dir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Publisher]]:
    """Factory: ``start_publisher(store_dir=None, index=None, search_enabled=True, **env)``."""
    started: list[Publisher] = []

    def start(
        store_dir: Path | None = None,
        index: str | None = None,
        search_enabled: bool = True,
        **env: str,
    ) -> Publisher:
        port = free_port()
        store = store_dir or output_dir / f"store-{len(started)}"
        index = index or f"profiles-{secrets.token_hex(4)}"
        token = "test-token-" + secrets.token_hex(8)
        settings = {
            "PROFILE_PUBLISHER_TOKEN": token,
            "PROFILE_PUBLISHER_HOST": "127.0.0.1",
            "PROFILE_PUBLISHER_PORT": str(port),
            # The harness probes OPS_PORT; this service serves its probes on the app port.
            "OPS_PORT": str(port),
            "PROFILE_PUBLISHER_STORE_DIR": str(store),
            "PROFILE_PUBLISHER_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PROFILE_PUBLISHER_ELASTICSEARCH_INDEX": index,
            "PROFILE_PUBLISHER_INDEX_RETRY_SECONDS": "0.3",
            "PROFILE_PUBLISHER_SHUTDOWN_TIMEOUT_SECONDS": "10",
            "ELASTICSEARCH_TIMEOUT_SECONDS": "3",
            **env,
        }
        search: SearchBackend | None = None
        if search_enabled:
            search = request.getfixturevalue("search_backend")
            settings.update(search.env())
        environment = service_env(**settings)
        if not search_enabled:
            environment.pop("ELASTICSEARCH_URL", None)
        log = output_dir / f"publisher-{len(started)}.log"
        process = ServiceProcess(SCRIPT, log, environment).start_ready(timeout=60, path="/readyz")
        publisher = Publisher(process, port, store, index, token, search)
        started.append(publisher)
        return publisher

    yield start
    for publisher in started:
        publisher.stop()
