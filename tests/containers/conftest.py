"""Session fixtures of the container tests: a Docker engine, the five service images and the offline
cluster's infrastructure images, each built once.

The service images are tagged with exactly the references the chart renders by default, so a rendered pod
spec runs the image this run built; the infrastructure images with the references k8s/offline names.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.images import (
    SERVICES,
    BuildResult,
    bake_spark_jars,
    build_images,
    chart_image_refs,
    ensure_base_images,
)
from streamwatch_dev.infra_images import IMAGES, build_infra_images


@pytest.fixture(scope="session")
def docker_engine(output_root: Path) -> Iterator[DockerEngine]:
    engine = DockerEngine.connect_or_start(output_root / "_infra")
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def service_images(docker_engine: DockerEngine, output_root: Path) -> dict[str, BuildResult]:
    """Every service image, built from this checkout (cached layers make a rebuild quick)."""
    log_dir = output_root / "_images"
    log_dir.mkdir(parents=True, exist_ok=True)
    bases = ensure_base_images(docker_engine, log_dir)
    bake_spark_jars()  # as `make spark-jars` does: the Spark images can run either connector
    refs = chart_image_refs()
    return build_images(docker_engine, SERVICES, refs, bases, log_dir)


@pytest.fixture(scope="session")
def infra_images(docker_engine: DockerEngine, output_root: Path) -> dict[str, str]:
    """Image name (kafka, elasticsearch, prometheus, pushgateway) -> reference, built from this checkout;
    an image whose inputs did not change is kept as it is."""
    log_dir = output_root / "_images"
    log_dir.mkdir(parents=True, exist_ok=True)
    build_infra_images(docker_engine, log_dir)
    return {image.name: image.ref for image in IMAGES}
