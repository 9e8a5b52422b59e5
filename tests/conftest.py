"""Session fixtures: each real component starts once on a free loopback port and is shared.

Tests stay independent through random topic names, group ids and index names (factory fixtures).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from streamwatch_dev.class_archive import archive_env, cached_archive
from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.elasticsearch import ElasticsearchNode
from streamwatch_dev.images import BuildResult, build_chart_images
from streamwatch_dev.infra_images import IMAGES, build_infra_images
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.kind import build_tools_in_background, stop_background
from streamwatch_dev.process import OUTPUT_ROOT
from streamwatch_dev.prometheus import Pushgateway
from streamwatch_dev.s3 import S3Server
from streamwatch_dev.s3 import build_in_background as build_weed_in_background
from streamwatch_dev.search import SearchBackend, SearchServer

_KIND_TESTS = "e2e_kind"
_background: list[subprocess.Popen[bytes]] = []


def pytest_collection_modifyitems(session: pytest.Session, items: list[pytest.Item]) -> None:
    """The offline cluster's tests run last, and the binaries built from the Go module proxy start
    building now, in the background: Kubernetes for the cluster, SeaweedFS for the object-store tests.

    A cold build takes many minutes; overlapped with the tests before the first that needs it, it costs
    far less than before them. The cluster's fixture waits for its build (build-tools.sh holds a lock),
    the store's for its own, and each builds what is missing itself if the background build failed.
    """
    if session.config.option.collectonly:
        return
    kind_items = [item for item in items if _KIND_TESTS in item.path.parts]
    if kind_items or any("s3" in getattr(item, "fixturenames", ()) for item in items):
        weed = build_weed_in_background(OUTPUT_ROOT / "_infra" / "seaweedfs-build-background.log")
        _background.extend([weed] if weed else [])
    if not kind_items:
        return
    items[:] = [item for item in items if _KIND_TESTS not in item.path.parts] + kind_items
    _background.append(build_tools_in_background(OUTPUT_ROOT / "_kind" / "build-tools-background.log"))


def pytest_sessionfinish(session: pytest.Session) -> None:
    for process in _background:
        stop_background(process)


@pytest.fixture(scope="session", autouse=True)
def spark_local_dirs() -> Iterator[Path]:
    """One scratch directory for every Spark driver of the session, removed at its end.

    A job the tests stop with SIGKILL never runs Spark's own clean-up, and its scratch files would
    otherwise stay in the machine's temporary directory.
    """
    path = Path(tempfile.mkdtemp(prefix="streamwatch-spark-"))
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("SPARK_LOCAL_DIRS", str(path))
        yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def spark_class_archive(request: pytest.FixtureRequest) -> Iterator[Path | None]:
    """The Spark jobs of the session map their drivers' classes from one archive (made once per Java and
    Spark build, streamwatch_dev.class_archive), through their own setting: seconds off every job start.

    Made only for a session with Spark tests in it; a job started without it only starts slower."""
    if not any(item.get_closest_marker("spark") for item in request.session.items):
        yield None
        return
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    archive = cached_archive(terminal.write_line if terminal is not None else print)
    with pytest.MonkeyPatch.context() as environment:
        for name, value in archive_env(archive).items():
            environment.setenv(name, value)
        yield archive


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


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_Component = TypeVar("_Component", bound=_Stoppable)


def _session_component(
    start: Callable[[Path], _Component], output_root: Path
) -> Generator[_Component, None, _Component]:
    """A session fixture's body: the component started with its files under ``_infra``, yielded, stopped
    at the end of the session (and returned, for a fixture that cleans up after it)."""
    component = start(output_root / "_infra")
    yield component
    component.stop()
    return component


@pytest.fixture(scope="session")
def kafka(output_root: Path) -> Iterator[KafkaBroker]:
    broker = yield from _session_component(KafkaBroker.start, output_root)
    shutil.rmtree(broker.data_dir, ignore_errors=True)  # tens of MB per session; its log file stays


@pytest.fixture(scope="session")
def pushgateway(output_root: Path) -> Iterator[Pushgateway]:
    yield from _session_component(Pushgateway.start, output_root)


@pytest.fixture(scope="session")
def search(output_root: Path) -> Iterator[SearchServer]:
    yield from _session_component(SearchServer.start, output_root)


@pytest.fixture(scope="session")
def elasticsearch(output_root: Path) -> Iterator[ElasticsearchNode]:
    """A real Elasticsearch 8 node with basic auth; for what depends on Elasticsearch's own behaviour."""
    yield from _session_component(ElasticsearchNode.start, output_root)


@pytest.fixture(scope="session")
def s3(output_root: Path) -> Iterator[S3Server]:
    """A real S3-compatible object store (SeaweedFS) with signed requests."""
    yield from _session_component(S3Server.start, output_root)


@pytest.fixture
def search_backend(request: pytest.FixtureRequest) -> SearchBackend:
    """The real Elasticsearch node; osmem behind its proxy for a test marked ``osmem`` (outages, delays)."""
    name = "search" if request.node.get_closest_marker("osmem") else "elasticsearch"
    backend: SearchBackend = request.getfixturevalue(name)
    return backend


# --- images: a Docker engine, the five service images and the offline cluster's infrastructure images,
# each built once per session and shared by the container tests and the kind cluster's. The service
# images are tagged with exactly the references the chart renders by default, so a rendered pod spec runs
# the image this run built; the infrastructure images with the references k8s/offline names.
@pytest.fixture(scope="session")
def docker_engine(output_root: Path) -> Iterator[DockerEngine]:
    yield from _session_component(DockerEngine.connect_or_start, output_root)


@pytest.fixture(scope="session")
def service_images(docker_engine: DockerEngine, output_root: Path) -> dict[str, BuildResult]:
    """Every service image, built from this checkout (cached layers make a rebuild quick)."""
    return build_chart_images(docker_engine, output_root / "_images")


@pytest.fixture(scope="session")
def infra_images(docker_engine: DockerEngine, output_root: Path) -> dict[str, str]:
    """Image name (kafka, elasticsearch, prometheus, pushgateway) -> reference, built from this checkout;
    an image whose inputs did not change is kept as it is."""
    log_dir = output_root / "_images"
    log_dir.mkdir(parents=True, exist_ok=True)
    build_infra_images(docker_engine, log_dir)
    return {image.name: image.ref for image in IMAGES}
