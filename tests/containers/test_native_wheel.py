"""The observer's classifier wheel, built on the host for the image, is the same bytes for the same code.

The Dockerfile copies it into the stage every service image shares: a wheel that differed with each build
would rebuild every image's last layers in every session."""

from __future__ import annotations

import hashlib
from pathlib import Path

from streamwatch_dev.images import build_native_wheel


def test_the_classifier_wheel_built_twice_is_the_same_bytes(tmp_path: Path, output_dir: Path) -> None:
    first = build_native_wheel(output_dir, tmp_path / "first")
    second = build_native_wheel(output_dir, tmp_path / "second")
    assert first.name == second.name
    assert hashlib.sha256(first.read_bytes()).hexdigest() == hashlib.sha256(second.read_bytes()).hexdigest()
