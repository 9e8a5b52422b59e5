"""The observer's classifier wheel, built on the host for the images, is the same bytes for the same code.

Every service's build context holds it (the shared stage copies it): a wheel that differed with each build
would rebuild every image's last layers in every session."""

from __future__ import annotations

import hashlib
from pathlib import Path

from streamwatch_dev.images import NATIVE_PACKAGE, BuildResult, build_native_wheel


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_fresh_build_of_the_wheel_is_the_same_bytes_as_the_images_wheel(
    service_images: dict[str, BuildResult], tmp_path: Path, output_dir: Path
) -> None:
    (in_images,) = sorted((NATIVE_PACKAGE / "dist").glob("*.whl"))
    fresh = build_native_wheel(output_dir, tmp_path / "dist")
    assert fresh.name == in_images.name
    assert _sha256(fresh) == _sha256(in_images)
