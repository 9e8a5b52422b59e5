"""Build the infrastructure images an offline cluster runs beside the services, without a registry.

Kafka, Elasticsearch, Prometheus, the Pushgateway and SeaweedFS, each ``FROM`` the locally imported
Debian base that :func:`streamwatch_dev.images.ensure_base_images` makes (Kafka and Elasticsearch through
a Java 17 image built on it): Kafka from the Maven Central jars and Elasticsearch from the
integration-test distribution that ``.ci/install-deps.sh`` leaves in the cache, Prometheus and the
Pushgateway from Debian's packages, SeaweedFS from the ``weed`` that ``.ci/seaweedfs.sh`` builds. The
Dockerfiles live in ``k8s/offline/images/<name>/``; the jars, the distribution and the binary are put
into a build context beside them here, since they are not in the repository.

Every image carries a label with the digest of what it was built from (its directory, the cached files
it copies, its build args and the id of its base image): a run whose inputs are unchanged builds nothing.

    uv run --frozen python -m streamwatch_dev.infra_images [--only kafka,elasticsearch]
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streamwatch_dev import elasticsearch, kafka, s3
from streamwatch_dev.docker import DockerEngine, cache_root
from streamwatch_dev.images import BuildResult, build_image, ensure_base_images, image_id, image_size
from streamwatch_dev.process import REPO_ROOT, ComponentStartError

IMAGES_DIR = REPO_ROOT / "k8s" / "offline" / "images"
PROMETHEUS_VERSION = "2.42.0"  # Debian bookworm's prometheus package
PUSHGATEWAY_VERSION = "1.5.1"  # Debian bookworm's prometheus-pushgateway package

JRE_IMAGE = "streamwatch-infra/jre:17"
KAFKA_IMAGE = f"streamwatch-infra/kafka:{kafka.KAFKA_VERSION}"
ELASTICSEARCH_IMAGE = f"streamwatch-infra/elasticsearch:{elasticsearch.VERSION}"
PROMETHEUS_IMAGE = f"streamwatch-infra/prometheus:{PROMETHEUS_VERSION}"
PUSHGATEWAY_IMAGE = f"streamwatch-infra/pushgateway:{PUSHGATEWAY_VERSION}"
SEAWEEDFS_IMAGE = f"streamwatch-infra/seaweedfs:{s3.VERSION}"
CONTENT_LABEL = "org.streamwatch.content-digest"


def _say(message: str) -> None:
    print(f"[infra-images] {message}", file=sys.stderr, flush=True)


def _kafka_libs() -> Path:
    libs = kafka.kafka_libs()
    if not (libs / f"kafka_2.13-{kafka.KAFKA_VERSION}.jar").is_file():
        raise ComponentStartError(
            f"Apache Kafka {kafka.KAFKA_VERSION} jars not found in {libs}"
            " (run make deps: .ci/install-deps.sh)"
        )
    return libs


@dataclass(frozen=True)
class InfraImage:
    """One image: its folder under ``k8s/offline/images``, its reference, and what its build needs."""

    name: str
    ref: str
    # The image its Dockerfile's BASE_IMAGE or JRE_IMAGE argument names: "debian" (the local Debian base)
    # or "jre" (the Java image built on it).
    base: str
    build_args: Mapping[str, str] = field(default_factory=dict)
    # Directories from the cache copied into the build context: context name -> where they are.
    cached: Callable[[], Mapping[str, Path]] = dict

    @property
    def directory(self) -> Path:
        return IMAGES_DIR / self.name


JRE = InfraImage("jre", JRE_IMAGE, base="debian")
IMAGES = (
    InfraImage("kafka", KAFKA_IMAGE, base="jre", cached=lambda: {"libs": _kafka_libs()}),
    InfraImage(
        "elasticsearch",
        ELASTICSEARCH_IMAGE,
        base="jre",
        cached=lambda: {"elasticsearch": elasticsearch.distribution()},
    ),
    InfraImage(
        "prometheus", PROMETHEUS_IMAGE, base="debian", build_args={"PROMETHEUS_VERSION": PROMETHEUS_VERSION}
    ),
    InfraImage(
        "pushgateway",
        PUSHGATEWAY_IMAGE,
        base="debian",
        build_args={"PUSHGATEWAY_VERSION": PUSHGATEWAY_VERSION},
    ),
    InfraImage("seaweedfs", SEAWEEDFS_IMAGE, base="debian", cached=lambda: {"weed": s3.weed_binary().parent}),
)
NAMES = tuple(image.name for image in IMAGES)


def _files(root: Path) -> Iterable[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())


def content_digest(image: InfraImage, base_id: str, build_args: Mapping[str, str]) -> str:
    """What the image is built from: every file of its folder and of its cached directories (path,
    executable bit, bytes), its build args and its base image's id."""
    digest = hashlib.sha256(f"{image.ref}\n{base_id}\n{sorted(build_args.items())}\n".encode())
    for prefix, root in [("", image.directory), *((f"{k}/", v) for k, v in sorted(image.cached().items()))]:
        for path in _files(root):
            executable = os.access(path, os.X_OK)
            digest.update(f"{prefix}{path.relative_to(root)}:{executable:d}\n".encode())
            if path.is_symlink():
                digest.update(os.readlink(path).encode())
                continue
            with path.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _built_from(engine: DockerEngine, ref: str) -> str | None:
    result = engine.run(
        "image", "inspect", "--format", f'{{{{index .Config.Labels "{CONTENT_LABEL}"}}}}', ref, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_image(
    engine: DockerEngine, image: InfraImage, bases: Mapping[str, str], log_dir: Path
) -> BuildResult | None:
    """Build ``image`` unless the image its reference names was built from the same inputs; returns the
    build's result, None when nothing was built. ``bases`` maps "debian"/"jre" to image references."""
    base_ref = bases[image.base]
    base_id = image_id(engine, base_ref)
    if base_id is None:
        raise ComponentStartError(f"{image.name}: its base image {base_ref} does not exist")
    arg = "JRE_IMAGE" if image.base == "jre" else "BASE_IMAGE"
    build_args = {arg: base_ref, **image.build_args}
    digest = content_digest(image, base_id, build_args)
    if _built_from(engine, image.ref) == digest:
        _say(f"{image.ref} is up to date")
        return None
    work = Path(tempfile.mkdtemp(prefix=f"swinfra-{image.name}-", dir=cache_root()))
    try:
        context = work / "context"
        shutil.copytree(image.directory, context)
        for name, source in image.cached().items():
            elasticsearch.link_tree(source, context / name)
        options = ["--label", f"{CONTENT_LABEL}={digest}"]
        for key, value in build_args.items():
            options += ["--build-arg", f"{key}={value}"]
        name = f"infra-{image.name}"
        return build_image(engine, name, ref=image.ref, options=options, context=context, log_dir=log_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_infra_images(
    engine: DockerEngine, log_dir: Path, names: Sequence[str] = NAMES
) -> dict[str, BuildResult | None]:
    """Ensure the local Debian base, the Java image when a JVM image is asked for, then each image of
    ``names``; image name -> its build (None: already up to date)."""
    unknown = set(names) - set(NAMES)
    if unknown:
        raise ComponentStartError(f"unknown infrastructure images {sorted(unknown)}; known: {list(NAMES)}")
    chosen = [image for image in IMAGES if image.name in names]
    bases = {"debian": ensure_base_images(engine, log_dir).python, "jre": JRE.ref}
    results: dict[str, BuildResult | None] = {}
    if any(image.base == "jre" for image in chosen):
        results[JRE.name] = ensure_image(engine, JRE, bases, log_dir)
    for image in chosen:
        results[image.name] = ensure_image(engine, image, bases, log_dir)
    return results


def main() -> None:
    """Build the infrastructure images of the offline cluster on a host-network Docker engine."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--only", default="", help=f"comma-separated images (default: {','.join(NAMES)})")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(NAMES)
    log_dir = cache_root() / "build-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    engine = DockerEngine.connect_or_start(log_dir)
    try:
        results = build_infra_images(engine, log_dir, names)
        for name, result in results.items():
            ref = result.ref if result else next(i.ref for i in (JRE, *IMAGES) if i.name == name)
            how = f"built in {result.seconds:.0f}s" if result else "unchanged"
            _say(f"{ref}: {image_size(engine, ref) / 2**20:.0f} MiB, {how}")
        _say(f"done in {time.monotonic() - start:.0f}s (build logs in {log_dir})")
        if engine.process is not None:
            _say(f"built in a private engine: DOCKER_HOST={engine.host} (stopped now; its images stay)")
        for image in IMAGES:
            if image.name in names:
                print(image.ref, flush=True)
    finally:
        engine.stop()


if __name__ == "__main__":
    main()
