"""Build the five service images without a registry.

One Dockerfile, ``services/Dockerfile``, builds every service; it keeps its production bases (the
official Python image, the uv image) as defaults and takes them as build args. Where no registry can be
reached, this module makes the two stand-ins locally:
a Debian bookworm root with Python 3.11 from debootstrap, and a one-file image holding the ``uv`` binary
from uv's wheel on PyPI. Everything this needs for trust (the host's CA bundle, for downloads inside a
build behind an intercepting proxy) is put into the stand-in base here, never into the Dockerfile.
"""

from __future__ import annotations

import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streamwatch_dev.chart import render
from streamwatch_dev.docker import DockerEngine, cache_root
from streamwatch_dev.process import REPO_ROOT, ComponentStartError
from streamwatch_dev.spark import s3a_jars_dir, spark_jars_dir

SERVICES = ("generator", "visits-writer", "passthrough", "observer", "profile-publisher")
LOCAL_PYTHON_IMAGE = "streamwatch-local/python:3.11-bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGE_CA_BUNDLE = "/usr/local/share/streamwatch/host-ca-certificates.crt"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The build cache budget: enough for every service's dependency layers and uv's download cache.
DEFAULT_BUILD_CACHE_KEEP = "8GB"


# Every service image is built from this one file, with ``--build-arg SERVICE=<service>``.
DOCKERFILE = REPO_ROOT / "services" / "Dockerfile"


def pinned_uv_version() -> str:
    """The uv version the Dockerfile pins (its UV_IMAGE default): one place says it."""
    match = re.search(r"^ARG UV_IMAGE=\S+:(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    if match is None:
        raise ComponentStartError(f"{DOCKERFILE}: no `ARG UV_IMAGE=...:<version>` line")
    return match.group(1)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (debootstrap and apt inside builds use it too)."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        match = re.search(r"^URIs:\s*(\S+/debian)\s*$", path.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        match = re.search(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)\s+bookworm", listing.read_text(), re.MULTILINE
        )
        if match:
            return match.group(1)
    return DEFAULT_MIRROR


def _say(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BaseImages:
    """The build args that point the Dockerfile at locally made bases."""

    python: str
    uv: str

    def build_args(self) -> list[str]:
        return ["--build-arg", f"PYTHON_IMAGE={self.python}", "--build-arg", f"UV_IMAGE={self.uv}"]


def ensure_base_images(engine: DockerEngine, log_dir: Path) -> BaseImages:
    uv_ref = f"streamwatch-local/uv:{pinned_uv_version()}"
    if not engine.image_exists(LOCAL_PYTHON_IMAGE):
        _make_python_base(engine, log_dir)
    if not engine.image_exists(uv_ref):
        _make_uv_image(engine, uv_ref)
    return BaseImages(LOCAL_PYTHON_IMAGE, uv_ref)


def _make_python_base(engine: DockerEngine, log_dir: Path) -> None:
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise ComponentStartError("debootstrap is not installed (run `make deps`)")
    mirror = debian_mirror()
    _say(f"making {LOCAL_PYTHON_IMAGE} with debootstrap from {mirror} (about a minute)")
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="swbase-", dir=cache_root()))
    root = work / "root"
    try:
        log = log_dir / "debootstrap.log"
        with log.open("wb") as out:
            result = subprocess.run(
                [debootstrap, "--variant=minbase", "--include=python3.11,ca-certificates", "bookworm",
                 str(root), mirror],
                stdout=out, stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
        if result.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise ComponentStartError(f"debootstrap failed ({result.returncode}):\n{tail}")
        # Package caches are dead weight; the Spark images run `apt-get update` themselves.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        ca_target = root / IMAGE_CA_BUNDLE.lstrip("/")
        ca_target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HOST_CA_BUNDLE, ca_target)
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True).stdout
        engine.run(
            "import",
            "-c", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "-c", "ENV LANG=C.UTF-8",
            # Downloads inside a build trust what this machine trusts (uv and pip read this variable).
            "-c", f"ENV SSL_CERT_FILE={IMAGE_CA_BUNDLE}",
            "-c", 'CMD ["python3.11"]',
            "-", LOCAL_PYTHON_IMAGE,
            input=tar, timeout=300,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _say(f"{LOCAL_PYTHON_IMAGE} ready in {time.monotonic() - start:.0f}s")


def _make_uv_image(engine: DockerEngine, ref: str) -> None:
    version = ref.rsplit(":", 1)[1]
    _say(f"making {ref} from uv's wheel on PyPI")
    uv = shutil.which("uv")
    if uv is None:
        raise ComponentStartError("uv is not on PATH (run `make deps`)")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [uv, "pip", "install", "-q", "--no-deps", "--target", tmp, "--python-platform",
             f"{platform.machine()}-manylinux_2_17", "--python-version", "3.11", f"uv=={version}"],
            check=True,
        )  # fmt: skip
        binary = (Path(tmp) / "bin" / "uv").read_bytes()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo("uv")
            info.size, info.mode = len(binary), 0o755
            tar.addfile(info, io.BytesIO(binary))
        engine.run("import", "-c", 'CMD ["/uv"]', "-", ref, input=buffer.getvalue(), timeout=120)


@dataclass(frozen=True)
class BuildResult:
    service: str
    ref: str
    seconds: float
    size_bytes: int


NATIVE_PACKAGE = REPO_ROOT / "native" / "visit_classifier"


#: 1980-01-01, the earliest time a zip entry can carry.
WHEEL_SOURCE_DATE_EPOCH = "315532800"


def build_native_wheel(log_dir: Path, dist: Path = NATIVE_PACKAGE / "dist") -> Path:
    """The observer's compiled classifier (Rust) as a wheel in ``dist``, by default
    ``native/visit_classifier/dist/``, where the Dockerfile takes it from: built here with the host's
    cargo (``make deps`` checks for it), so the image build needs no Rust toolchain and no network to
    fetch one. The host and the images are Debian bookworm (glibc 2.36), so the wheel runs in the image."""
    cargo_bin = Path.home() / ".cargo" / "bin"
    # A fixed SOURCE_DATE_EPOCH makes maturin's wheel byte-for-byte the same for the same code (its zip
    # times and its SBOM's serial number and time otherwise change with every build): the Dockerfile's
    # layers from the wheel's COPY on stay cached, for all five images, until the code changes.
    env = {
        "SOURCE_DATE_EPOCH": WHEEL_SOURCE_DATE_EPOCH,
        **os.environ,
        "PATH": f"{os.environ.get('PATH', '')}:{cargo_bin}",
    }
    if shutil.which("cargo", path=env["PATH"]) is None:
        raise ComponentStartError("cargo is not installed (the observer image needs native/visit_classifier)")
    shutil.rmtree(dist, ignore_errors=True)
    log = log_dir / "build-visit-classifier-wheel.log"
    start = time.monotonic()
    command = ["uv", "build", "--wheel", "--out-dir", str(dist), str(NATIVE_PACKAGE)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=1800)
    log.write_text(result.stdout + result.stderr)
    wheels = sorted(dist.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise ComponentStartError(f"building the classifier wheel failed; log {log}:\n{tail}")
    size = wheels[0].stat().st_size / 2**20
    _say(f"{wheels[0].name} built in {time.monotonic() - start:.0f}s, {size:.1f} MiB")
    return wheels[0]


def build_service_image(
    engine: DockerEngine, service: str, ref: str, bases: BaseImages | None, log_dir: Path
) -> BuildResult:
    """``docker build`` of one service from the repository root, tagged ``ref``; the log goes to a file."""
    options = ["-f", str(DOCKERFILE), "--build-arg", f"SERVICE={service}"]
    options += bases.build_args() if bases else []
    return build_image(engine, service, ref=ref, options=options, context=REPO_ROOT, log_dir=log_dir)


def build_image(
    engine: DockerEngine, name: str, *, ref: str, options: Sequence[str], context: Path, log_dir: Path
) -> BuildResult:
    """``docker build`` of ``context`` tagged ``ref``, with further ``docker build`` ``options`` (``-f``,
    build args, labels); the log goes to ``build-<name>.log``. The image ``ref`` named before is removed
    when the build replaced it."""
    log = log_dir / f"build-{name}.log"
    _say(f"building {ref}")
    start = time.monotonic()
    previous = image_id(engine, ref)
    args = ["build", "--network", "host", "--progress", "plain", "-t", ref, *options, str(context)]
    result = engine.run(*args, check=False, timeout=1800)
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise ComponentStartError(f"docker build of {name} failed ({result.returncode}); log {log}:\n{tail}")
    seconds = time.monotonic() - start
    if previous is not None and previous != image_id(engine, ref):
        _remove_replaced_image(engine, ref, previous)
    size = image_size(engine, ref)
    _say(f"{ref} built in {seconds:.0f}s, {size / 2**20:.0f} MiB")
    return BuildResult(name, ref, round(seconds, 1), size)


def image_size(engine: DockerEngine, ref: str) -> int:
    """The image's size in bytes, its base layers included (what ``docker images`` shows)."""
    return int(engine.run("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())


def image_id(engine: DockerEngine, ref: str) -> str | None:
    """The id of the image ``ref`` names, None when there is none."""
    result = engine.run("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _remove_replaced_image(engine: DockerEngine, ref: str, image_id: str) -> None:
    """Remove the image a rebuild took ``ref`` from: untagged, it would only fill the disk."""
    result = engine.run("image", "rm", image_id, check=False)
    if result.returncode != 0:  # e.g. a container still runs it; the next build tries again
        _say(f"kept the image {ref} replaced ({image_id[:19]}): {result.stderr.strip()}")


def build_images(
    engine: DockerEngine,
    services: Sequence[str],
    refs: dict[str, str],
    bases: BaseImages | None,
    log_dir: Path,
) -> dict[str, BuildResult]:
    """Build ``services`` as ``refs`` names them, then trim the build cache to its budget.

    The classifier wheel is built first: every service's build context holds it (the shared stage copies
    it), so each image of one call sees the same wheel, and an unchanged wheel leaves every layer cached.
    """
    build_native_wheel(log_dir)
    built = {service: build_service_image(engine, service, refs[service], bases, log_dir)
             for service in services}  # fmt: skip
    trim_build_cache(engine)
    return built


def build_chart_images(engine: DockerEngine, log_dir: Path) -> dict[str, BuildResult]:
    """Every service image as the chart names it, on the local bases, with Spark's connector jars baked
    in (as `make spark-jars` does: the Spark images can run either connector)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    bases = ensure_base_images(engine, log_dir)
    bake_spark_jars()
    return build_images(engine, SERVICES, chart_image_refs(), bases, log_dir)


def trim_build_cache(engine: DockerEngine) -> None:
    """Keep the most recently used build cache within ``STREAMWATCH_BUILD_CACHE_KEEP``.

    Every code change leaves the previous virtual environment layers in the cache; without a budget
    repeated runs fill the disk.
    """
    keep = os.environ.get("STREAMWATCH_BUILD_CACHE_KEEP", DEFAULT_BUILD_CACHE_KEEP)
    if not re.fullmatch(r"\d+(?:[kmg]b?)?", keep, re.IGNORECASE):
        raise ComponentStartError(
            f"STREAMWATCH_BUILD_CACHE_KEEP={keep!r}: expected a size such as 8GB or 500MB"
        )
    result = engine.run("builder", "prune", "-f", "--keep-storage", keep, check=False, timeout=600)
    if result.returncode != 0:
        raise ComponentStartError(f"docker builder prune failed: {result.stderr.strip()}")
    reclaimed = result.stdout.strip().splitlines()[-1:] or ["nothing reclaimed"]
    _say(f"build cache trimmed to {keep}: {reclaimed[0]}")


def bake_spark_jars() -> int:
    """Copy Spark's JVM connector jars from the Maven cache into ``spark-jars/`` (the build context's
    directory the Spark images copy to /opt/spark-jars), replacing what was there; returns the count."""
    libs = spark_jars_dir()
    target = REPO_ROOT / "spark-jars"
    for old in target.glob("*.jar"):
        old.unlink()
    jars = sorted(libs.glob("*.jar"))
    for jar in jars:
        shutil.copyfile(jar, target / jar.name)
    _say(f"{len(jars)} connector jars from {libs} in {target}: the next Spark image build carries them")
    # hadoop-aws beside them, for a checkpoint on object storage (either connector): /opt/spark-jars/s3a.
    s3a = target / "s3a"
    shutil.rmtree(s3a, ignore_errors=True)
    s3a.mkdir()
    for jar in sorted(s3a_jars_dir().glob("*.jar")):
        shutil.copyfile(jar, s3a / jar.name)
    return len(jars)


def chart_image_refs(set_values: dict[str, str] | None = None) -> dict[str, str]:
    """Service → the image reference the chart renders for it (so a rendered pod runs what was built)."""
    refs: dict[str, set[str]] = {}
    for doc in render(set_values):
        if doc.get("kind") not in {"Deployment", "StatefulSet"}:
            continue
        component = doc["metadata"]["labels"].get("app.kubernetes.io/component")
        if component in SERVICES:
            spec = doc["spec"]["template"]["spec"]
            for c in [*spec.get("initContainers", []), *spec["containers"]]:
                refs.setdefault(component, set()).add(c["image"])
    single = {service: images.pop() for service, images in refs.items() if len(images) == 1}
    if set(single) != set(SERVICES):
        raise ComponentStartError(f"the chart does not render one image per service: {refs}")
    return single


def main() -> None:
    """``make container-images``: build the five images as the chart names them, no registry needed."""
    import argparse

    from streamwatch_dev.docker import DockerEngine

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument(
        "--registry-bases",
        action="store_true",
        help="build on the Dockerfile's default bases (pulled from their registries) instead of local ones",
    )
    parser.add_argument("--only", default="", help="comma-separated services (default: all five)")
    parser.add_argument(
        "--spark-jars-only",
        action="store_true",
        help="only copy Spark's JVM connector jars into spark-jars/ (for images that may run the jvm"
        " connector), build nothing",
    )
    parser.add_argument(
        "--classifier-wheel-only",
        action="store_true",
        help="only build the observer's classifier wheel into native/visit_classifier/dist/ (as every"
        " image build does first), build no image",
    )
    args = parser.parse_args()
    if args.spark_jars_only:
        bake_spark_jars()
        return
    log_dir = cache_root() / "build-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if args.classifier_wheel_only:
        try:
            build_native_wheel(log_dir)
        except ComponentStartError as exc:  # kind.sh and skaffold run this: one line, as their own check was
            raise SystemExit(f"images: {exc}") from None
        return
    engine = DockerEngine.connect_or_start(log_dir)
    try:
        bases = None if args.registry_bases else ensure_base_images(engine, log_dir)
        refs = chart_image_refs()
        services = [s for s in SERVICES if not args.only or s in args.only.split(",")]
        build_images(engine, services, refs, bases, log_dir)
        if engine.process is not None:
            _say(f"built in a private engine: DOCKER_HOST={engine.host} (stopped now; its images stay)")
    finally:
        engine.stop()


if __name__ == "__main__":
    main()
