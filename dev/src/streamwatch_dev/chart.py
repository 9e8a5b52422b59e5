"""Render the Helm chart (or parts of it) with the real helm binary."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from streamwatch_dev.process import REPO_ROOT, ComponentStartError

CHART = REPO_ROOT / "charts" / "streamwatch"


def helm_binary() -> str:
    for candidate in (
        os.environ.get("HELM"),
        str(REPO_ROOT / ".tools" / "bin" / "helm"),
        shutil.which("helm"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    raise ComponentStartError("helm not found: run `make deps` (it unpacks helm into .tools/bin)")


def helm(*args: str) -> str:
    result = subprocess.run([helm_binary(), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


# libyaml's loader where PyYAML has it: a rendered chart is thousands of lines, parsed by hundreds of tests.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# `helm template`'s output per command line and values files' contents: the chart does not change during a
# session, and many tests render the same values.
_rendered: dict[tuple[tuple[str, ...], tuple[bytes, ...]], str] = {}


def parse_manifests(text: str) -> list[dict[str, Any]]:
    """A multi-document YAML stream (``helm template``'s output) → its non-empty documents."""
    return [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc]


def render(
    set_values: dict[str, Any] | None = None,
    values_files: list[Path] | None = None,
    show_only: str | None = None,
    release: str = "sw",
    *,
    fresh: bool = False,
) -> list[dict[str, Any]]:
    """``helm template`` → the list of rendered manifests (new objects on every call). The output is
    reused for the same arguments unless ``fresh``: what the chart draws at random (generated passwords)
    is then drawn again."""
    args = ["template", release, str(CHART)]
    for path in values_files or []:
        args += ["-f", str(path)]
    for key, value in (set_values or {}).items():
        args += ["--set", f"{key}={value}"]
    if show_only:
        args += ["--show-only", show_only]
    cache_key = (tuple(args), tuple(path.read_bytes() for path in values_files or []))
    if fresh or cache_key not in _rendered:
        _rendered[cache_key] = helm(*args)
    return parse_manifests(_rendered[cache_key])


def render_rule_files(
    target: Path, set_values: dict[str, Any] | None = None, values_files: list[Path] | None = None
) -> list[Path]:
    """The chart's Prometheus rule files as rendered with these values, written under ``target``."""
    (configmap,) = render(set_values, values_files, show_only="templates/prometheus/rules-configmap.yaml")
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in configmap["data"].items():
        path = target / name
        path.write_text(text)
        paths.append(path)
    return sorted(paths)
