"""Session fixtures: each real component starts once on a free loopback port and is shared.

Tests stay independent through random topic names, group ids and index names (factory fixtures).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamwatch_dev.elasticsearch import ElasticsearchNode
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import OUTPUT_ROOT
from streamwatch_dev.prometheus import Pushgateway
from streamwatch_dev.search import SearchBackend, SearchServer


@pytest.fixture(scope="session", autouse=True)
def spark_local_dirs() -> Iterator[Path]:
    """One scratch directory for every Spark driver of the session, removed at its end.

    A job the tests stop with SIGKILL never runs Spark's own clean-up, and its scratch files would
    otherwise stay in the machine's temporary directory.
    """
    path = Path(tempfile.mkdtemp(prefix="streamwatch-spark-"))
    previous = os.environ.get("SPARK_LOCAL_DIRS")
    os.environ["SPARK_LOCAL_DIRS"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("SPARK_LOCAL_DIRS", None)
    else:
        os.environ["SPARK_LOCAL_DIRS"] = previous
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def output_root() -> Path:
    OUTPUT_ROOT.mkdir(exist_ok=True)
    return OUTPUT_ROOT


@pytest.fixture
def output_dir(request: pytest.FixtureRequest, output_root: Path) -> Path:
    """A fresh directory for this test's logs, files and screenshots (kept after the run)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-120:]
    path = output_root / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def kafka(output_root: Path) -> Iterator[KafkaBroker]:
    broker = KafkaBroker.start(output_root / "_infra")
    yield broker
    broker.stop()
    shutil.rmtree(broker.data_dir, ignore_errors=True)  # tens of MB per session; its log file stays


@pytest.fixture(scope="session")
def pushgateway(output_root: Path) -> Iterator[Pushgateway]:
    gateway = Pushgateway.start(output_root / "_infra")
    yield gateway
    gateway.stop()


@pytest.fixture(scope="session")
def search(output_root: Path) -> Iterator[SearchServer]:
    server = SearchServer.start(output_root / "_infra")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def elasticsearch(output_root: Path) -> Iterator[ElasticsearchNode]:
    """A real Elasticsearch 8 node with basic auth; for what depends on Elasticsearch's own behaviour."""
    node = ElasticsearchNode.start(output_root / "_infra")
    yield node
    node.stop()


@pytest.fixture
def search_backend(request: pytest.FixtureRequest) -> SearchBackend:
    """The real Elasticsearch node; osmem behind its proxy for a test marked ``osmem`` (outages, delays)."""
    name = "search" if request.node.get_closest_marker("osmem") else "elasticsearch"
    backend: SearchBackend = request.getfixturevalue(name)
    return backend
