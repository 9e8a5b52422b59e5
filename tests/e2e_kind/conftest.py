"""The offline kind cluster (k8s/offline/README.md), made once per session for the tests of this folder.

It is built from the package registries on first use (Kubernetes from the Go module proxy, the node image
from Debian, the images from this checkout) and cached; `k8s/kind.sh up`, the script behind `make up`,
installs the chart on it with `helm install --wait` and `helm test`. A step that cannot be done stops
the run with one line naming it: nothing here is skipped.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e_kind.cluster import Cluster

from streamwatch_dev import kind
from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.images import BuildResult
from streamwatch_dev.kind import OFFLINE, KindSandbox, image_archive, kind_sh_tags
from streamwatch_dev.s3 import credentials_secret

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
    log_dir = output_root / "_kind"
    sandbox = KindSandbox.prepare(log_dir)
    try:
        tags = kind_sh_tags()
        refs = {build.ref: tags[service] for service, build in service_images.items()}
        refs.update({ref: ref for ref in infra_images.values()})
        archive = image_archive(docker_engine, refs, log_dir / "images.tar")
        # The object store's one identity, fresh for this cluster (k8s/offline/seaweedfs.yaml needs it).
        store_secret = log_dir / "checkpoint-store.yaml"
        secret = credentials_secret(STORE_SECRET, "streamwatch-e2e", secrets.token_urlsafe(24))
        store_secret.write_text(yaml.safe_dump(secret))
        store_secret.chmod(0o600)
        sandbox.up(
            archive,
            values_files=[OFFLINE / "values.yaml", TEST_VALUES],
            extra_manifests=[OFFLINE / "kafka.yaml", store_secret, OFFLINE / "seaweedfs.yaml"],
            wait_seconds=900,
        )
        archive.unlink()
        store_secret.unlink()
        yield Cluster(sandbox)
    finally:
        sandbox.down()
