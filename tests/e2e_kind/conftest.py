"""The offline kind cluster (k8s/offline/README.md), made once per session for the tests of this folder.

It is built from the package registries on first use (Kubernetes from the Go module proxy, the node image
from Debian, the images from this checkout) and cached; `k8s/kind.sh up`, the script behind `make up`,
installs the chart on it with `helm install --wait` and `helm test`. A step that cannot be done stops
the run with one line naming it: nothing here is skipped.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.capture import CaptureManager

from streamwatch_dev import kind
from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.images import BuildResult
from streamwatch_dev.kind_release import Cluster, offline_release

HERE = Path(__file__).parent
# The test's timing on top of the offline values: small windows, a generator that stops by itself.
TEST_VALUES = HERE / "values.yaml"
# objectStore.credentialsSecret.name in TEST_VALUES.
STORE_SECRET = "checkpoint-store"
# Added to the worker's niceness before the cluster starts (inherited by the sandbox and every pod).
CLUSTER_NICENESS = 15


@pytest.fixture(scope="session")
def kind_cluster(
    docker_engine: DockerEngine,
    service_images: dict[str, BuildResult],
    infra_images: dict[str, str],
    output_root: Path,
    pytestconfig: pytest.Config,
) -> Iterator[Cluster]:
    # The cluster takes minutes to make: say what it is doing on the terminal, past pytest's capture.
    # An xdist worker's terminal reporter writes to the channel to its controller, which shows none of
    # it; the worker's standard error is the run's own.
    worker = hasattr(pytestconfig, "workerinput")
    terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if worker and capture is not None:
        kind.progress = functools.partial(_past_capture, capture)
    elif terminal is not None:
        kind.progress = terminal.write_line
    if worker:
        # Beside the other tests (`make test`'s two xdist workers) the cluster, and all it starts, runs at
        # a lower CPU priority: their timing assumes a machine of their own, while this folder's tests wait
        # on the cluster with deadlines made for a slow one.
        os.nice(CLUSTER_NICENESS)
    with offline_release(
        docker_engine, service_images, infra_images, output_root / "_kind",
        values_files=[TEST_VALUES], store_secret=STORE_SECRET,
    ) as cluster:  # fmt: skip
        yield cluster


def _past_capture(capture: CaptureManager, message: str) -> None:
    with capture.global_and_fixture_disabled():
        print(message, file=sys.stderr, flush=True)
