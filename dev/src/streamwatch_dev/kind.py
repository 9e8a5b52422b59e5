"""The offline kind cluster that ``make test`` installs the chart on (k8s/offline/README.md).

Every step is one of the scripts in k8s/offline/ or ``k8s/kind.sh up`` itself, the script behind
``make up``, with the test's settings (node image, values files, image archive, no Strimzi operator):
this module only strings them together and runs ``kubectl`` and ``helm`` inside the sandbox's network
namespace, where the cluster's API server listens.

Usage::

    sandbox = KindSandbox.prepare(log_dir)          # builds or reuses tools and node image, starts the engine
    sandbox.create_cluster()                        # the nodes (the images can be saved meanwhile)
    sandbox.up(archive, values_files=[...], extra_manifests=[...])
    pods = sandbox.kubectl_json("get", "pods", "-n", "streamwatch")
    sandbox.down()                                  # cluster, engine, namespace, cgroups; host settings back
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.process import REPO_ROOT, ComponentStartError

OFFLINE = REPO_ROOT / "k8s" / "offline"
SANDBOX = OFFLINE / "sandbox.sh"
KIND_SH = REPO_ROOT / "k8s" / "kind.sh"
HELM_DIR = REPO_ROOT / ".tools" / "bin"
NAMESPACE = "streamwatch"
RELEASE = "sw"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Where progress lines go: stderr, or what the caller sets (pytest's terminal, which its capture spares).
progress: Callable[[str], None] = _stderr


def _say(message: str) -> None:
    progress(f"[kind] {message}")


def _lib_value(name: str) -> str:
    """A value lib.sh computes (one definition of versions and cache paths, in the shell scripts)."""
    result = subprocess.run(
        ["bash", "-c", f'source "{OFFLINE}/lib.sh" && printf %s "${name}"'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout


def _script(args: Sequence[str], log: Path, what: str, env: dict[str, str] | None = None) -> str:
    """Run a k8s/offline or k8s/kind.sh step with its output in ``log``; return its last stdout line
    (node-image.sh prints the image it made there). A failure names the step and shows the log's end."""
    _say(f"{what} (log: {log})")
    start = time.monotonic()
    with log.open("ab") as out:
        result = subprocess.run(
            list(args), stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            cwd=REPO_ROOT, check=False,
        )  # fmt: skip
    lines = log.read_text(errors="replace").splitlines()
    if result.returncode != 0:
        tail = "\n".join(lines[-25:])
        raise ComponentStartError(f"{what} failed (exit {result.returncode}); log {log}:\n{tail}")
    _say(f"{what}: done in {time.monotonic() - start:.0f}s")
    return lines[-1] if lines else ""


def build_tools_in_background(log: Path) -> subprocess.Popen[bytes]:
    """Start build-tools.sh at the lowest CPU priority, output in ``log``. A cold build takes many
    minutes; started when a session begins, it overlaps the tests that mostly wait on their components,
    and :meth:`KindSandbox.prepare`'s own call waits for it on the script's lock. A failure here is not
    the session's: prepare's call runs the build again and names what failed."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            ["nice", "-n", "19", "bash", str(OFFLINE / "build-tools.sh")],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True,
        )  # fmt: skip


def stop_background(process: subprocess.Popen[bytes]) -> None:
    """End a background build that is still running (a session that ended before it needed it)."""
    if process.poll() is None:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


@dataclass(frozen=True)
class KindSandbox:
    """A sandboxed engine with the node image in it; ``up`` makes the cluster and installs the chart."""

    node_image: str
    tools_bin: Path
    state_dir: Path
    log_dir: Path

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @classmethod
    def prepare(cls, log_dir: Path) -> KindSandbox:
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / "kind-prepare.log"
        _script(["bash", str(OFFLINE / "build-tools.sh")], log, "Kubernetes, kind and add-on binaries")
        # A run that was killed may have left its cluster (and a release on it): start from none.
        _script(["bash", str(SANDBOX), "down"], log, "sandbox: removing what an earlier run left")
        _script(["bash", str(SANDBOX), "up"], log, "sandbox: network namespace and Docker engine")
        # On the host's network (debootstrap and apt need the registries), into the sandbox's engine.
        engine = _script(["bash", str(SANDBOX), "env"], log, "sandbox engine address").strip()
        if not engine.startswith("DOCKER_HOST="):
            raise ComponentStartError(f"sandbox.sh env printed {engine!r}, not DOCKER_HOST=...")
        try:
            node_image = _script(
                ["bash", str(OFFLINE / "node-image.sh")], log, "kind node image",
                env=dict([engine.split("=", 1)]),
            ).strip()  # fmt: skip
        except BaseException:
            cls._sandbox_down(log)
            raise
        state = Path(_lib_value("SW_SANDBOX_STATE"))
        return cls(node_image, Path(_lib_value("TOOLS_DIR")) / "bin", state, log_dir)

    # --- commands inside the sandbox ---------------------------------------------------------------
    def env(self) -> dict[str, str]:
        path = f"{self.tools_bin}:{HELM_DIR}:/usr/bin:{os.environ.get('PATH', '')}"
        return {"PATH": path, "KUBECONFIG": str(self.kubeconfig)}

    def command(self, *args: str, **settings: str) -> list[str]:
        """The argv that runs ``args`` inside the sandbox with ``settings`` added to its environment (for
        a process that must outlive one call)."""
        env = {**self.env(), **settings}
        return ["bash", str(SANDBOX), "run", "env", *[f"{k}={v}" for k, v in env.items()], *args]

    def run(
        self, *args: str, check: bool = True, timeout: float = 300, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(*args),
            capture_output=True, text=True, timeout=timeout, input=input, cwd=REPO_ROOT, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:4])} … failed ({result.returncode}):\n{result.stderr[-3000:]}"
            )
        return result

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", "--namespace", NAMESPACE, *args, **kwargs)

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def helm(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run("helm", "--namespace", NAMESPACE, *args, **kwargs)

    # --- cluster -----------------------------------------------------------------------------------
    def _kind_sh_settings(self) -> dict[str, str]:
        """What both of ``k8s/kind.sh``'s steps are given: the offline cluster's config and node image."""
        return {
            "KIND_CONFIG": str(OFFLINE / "kind-config.yaml"),
            "KIND_NODE_IMAGE": self.node_image,
            # The bridge CNI makes no routes between the two nodes' pod ranges (k8s/offline/node/pod-network).
            "POD_ROUTES": "1",
        }

    def create_cluster(self) -> None:
        """``k8s/kind.sh cluster``: the two nodes and their routes, before the images are there (``up``
        reuses the cluster). It needs no image, so the caller can save the images meanwhile."""
        _script(
            self.command("bash", str(KIND_SH), "cluster", **self._kind_sh_settings()),
            self.log_dir / "kind-up.log",
            "k8s/kind.sh cluster (the cluster's two nodes)",
        )  # fmt: skip

    def up(
        self, archive: Path, values_files: Sequence[Path], extra_manifests: Sequence[Path], wait_seconds: int
    ) -> None:
        """``k8s/kind.sh up`` with the test's settings: cluster, images, manifests, helm install --wait."""
        settings = {
            **self._kind_sh_settings(),
            "VALUES_FILES": " ".join(str(p) for p in values_files),
            "EXTRA_MANIFESTS": " ".join(str(p) for p in extra_manifests),
            "IMAGE_ARCHIVE": str(archive),
            "STRIMZI": "0",
            "HELM_WAIT": "1",
            "WAIT_SECONDS": str(wait_seconds),
            "NAMESPACE": NAMESPACE,
            "RELEASE": RELEASE,
        }
        try:
            _script(
                self.command("bash", str(KIND_SH), "up", **settings),
                self.log_dir / "kind-up.log",
                "k8s/kind.sh up (cluster, images, helm install --wait, helm test)",
            )  # fmt: skip
        except ComponentStartError as exc:
            # The step's own failure last: a CI log shown from its end shows it first.
            raise ComponentStartError(f"{self.diagnose()}\n{exc}") from exc

    def diagnose(self) -> str:
        """What a failed install looks like: pods, and describe + last log lines of each unready pod."""
        report = [self.kubectl("get", "pods", "-o", "wide", check=False).stdout]
        try:
            pods = self.kubectl_json("get", "pods")["items"]
        except (RuntimeError, ValueError) as exc:
            return f"{report[0]}\n(could not list pods: {exc})"
        for pod in pods:
            statuses = pod["status"].get("containerStatuses") or []
            if statuses and all(s.get("ready") for s in statuses):
                continue
            name = pod["metadata"]["name"]
            describe = self.kubectl("describe", "pod", name, check=False).stdout
            logs = self.kubectl("logs", name, "--all-containers", "--tail", "30", check=False)
            report.append(f"--- {name}\n{describe[-3000:]}\n--- logs\n{logs.stdout}{logs.stderr}")
        return "\n".join(report)

    def down(self) -> None:
        self._sandbox_down(self.log_dir / "kind-down.log")

    @staticmethod
    def _sandbox_down(log: Path) -> None:
        _script(["bash", str(SANDBOX), "down"], log, "sandbox down")


def image_archive(engine: DockerEngine, refs: dict[str, str], target: Path) -> Path:
    """Tag the built images as ``k8s/kind.sh tags`` names them and save them to one archive.

    Images are built on the host's engine, which reaches the package registries; the sandbox's engine
    cannot, so they travel as a ``docker save`` tar that ``kind load image-archive`` puts on the node.
    ``refs`` maps each image's built reference to the reference the cluster runs it as.
    """
    for source, ref in refs.items():
        if source != ref:
            engine.run("tag", source, ref)
    target.parent.mkdir(parents=True, exist_ok=True)
    _say(f"saving {len(refs)} images to {target}")
    engine.run("save", "-o", str(target), *refs.values(), timeout=900)
    return target


def kind_sh_tags() -> dict[str, str]:
    """Service → the image reference ``k8s/kind.sh`` gives the chart (its content tag)."""
    lines = subprocess.run(
        ["bash", str(KIND_SH), "tags"], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout.split()
    return {line.split(":")[0].removeprefix("streamwatch-"): line for line in lines}
