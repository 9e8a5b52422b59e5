"""Walk rendered manifests: the pod templates and containers of every workload kind."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


@dataclass(frozen=True)
class Container:
    """One container of one rendered workload."""

    workload: Manifest
    pod_spec: dict[str, Any]
    spec: dict[str, Any]
    init: bool

    @property
    def where(self) -> str:
        kind = "initContainer" if self.init else "container"
        return f"{self.workload['kind']}/{self.workload['metadata']['name']} {kind} {self.spec['name']}"

    @property
    def component(self) -> str:
        return str(self.workload["metadata"]["labels"].get("app.kubernetes.io/component", ""))

    @property
    def is_test_hook(self) -> bool:
        return "test" in self.hook

    @property
    def hook(self) -> str:
        """The Helm hook events this container's pod runs on (``test``, ``post-delete``); empty when none."""
        return str(self.workload["metadata"].get("annotations", {}).get("helm.sh/hook", ""))

    def env(self) -> dict[str, dict[str, Any]]:
        """Env var name → its EnvVar object."""
        return {e["name"]: e for e in self.spec.get("env", [])}


def pod_spec(manifest: Manifest) -> dict[str, Any] | None:
    kind = manifest.get("kind")
    if kind == "Pod":
        return dict(manifest["spec"])
    if kind == "CronJob":
        return dict(manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    if kind in WORKLOAD_KINDS:
        return dict(manifest["spec"]["template"]["spec"])
    return None


def containers(manifests: list[Manifest]) -> Iterator[Container]:
    """Every container and init container of every workload."""
    for manifest in manifests:
        spec = pod_spec(manifest)
        if spec is None:
            continue
        for c in spec.get("initContainers", []):
            yield Container(manifest, spec, c, init=True)
        for c in spec.get("containers", []):
            yield Container(manifest, spec, c, init=False)


def service_containers(manifests: list[Manifest], component: str) -> list[Container]:
    """The containers (init included) running our service ``component``, hook pods excluded."""
    return [
        c
        for c in containers(manifests)
        if c.component == component and not c.is_test_hook and c.workload["kind"] != "Pod"
    ]


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.get("kind") == kind]


def secret_value(manifests: list[Manifest], ref: Mapping[str, str]) -> str:
    """The value a ``secretKeyRef`` names, read from the rendered Secret objects."""
    (secret,) = [s for s in by_kind(manifests, "Secret") if s["metadata"]["name"] == ref["name"]]
    if "stringData" in secret and ref["key"] in secret["stringData"]:
        return str(secret["stringData"][ref["key"]])
    return base64.b64decode(secret["data"][ref["key"]]).decode()
