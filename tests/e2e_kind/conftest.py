"""The offline kind cluster (k8s/offline/README.md), made once per session for the tests of this folder.

It is built from the package registries on first use (Kubernetes from the Go module proxy, the node image
from Debian, the images from this checkout) and cached; `k8s/kind.sh up`, the script behind `make up`,
installs the chart on it with `helm install --wait` and `helm test`. A step that cannot be done stops
the run with one line naming it: nothing here is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamwatch_dev import kind
from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.images import BuildResult
from streamwatch_dev.kind_release import Cluster, offline_release

HERE = Path(__file__).parent
# The test's timing on top of the offline values: small windows, a generator that stops by itself.
TEST_VALUES = HERE / "values.yaml"
# objectStore.credentialsSecret.name in TEST_VALUES.
STORE_SECRET = "checkpoint-store"


@pytest.fixture(scope="session")
def kind_cluster(
    docker_engine: DockerEngine,
    service_images: dict[str, BuildResult],
    infra_images: dict[str, str],
    output_root: Path,
    pytestconfig: pytest.Config,
) -> Iterator[Cluster]:
    # The cluster takes minutes to make: say what it is doing on the terminal, past pytest's capture.
    terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        kind.progress = terminal.write_line
    with offline_release(
        docker_engine, service_images, infra_images, output_root / "_kind",
        values_files=[TEST_VALUES], store_secret=STORE_SECRET,
    ) as cluster:  # fmt: skip
        yield cluster
