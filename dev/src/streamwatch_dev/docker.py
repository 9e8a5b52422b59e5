"""A Docker engine for the tests: the user's own when one answers, else a private one started here.

The private engine never touches the machine's network: no iptables rules, no bridge, and containers
share the host's network namespace (``--network host``), so services reach the harness's loopback
ports exactly as local processes do. Its data root lives in a cache directory outside the repository,
so image layers survive between runs and a rebuild after a code change reuses the dependency layers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamwatch_dev.process import ComponentStartError, ManagedProcess, deps_cache

# Debian's client: BuildKit builds need a client that speaks to the engine's built-in builder, and the
# newer client some machines carry in /usr/local/bin wants a buildx plugin that is not installed.
DOCKER_CLIENTS = ("/usr/bin/docker", "docker")


def cache_root() -> Path:
    """Where downloaded and built artefacts live between runs (never inside the repository)."""
    if os.environ.get("STREAMWATCH_CACHE"):
        return Path(os.environ["STREAMWATCH_CACHE"])
    return deps_cache()


def docker_client() -> str:
    for candidate in DOCKER_CLIENTS:
        found = shutil.which(candidate)
        if found:
            return found
    raise ComponentStartError("docker: no client found (run `make deps`: it installs Debian's docker.io)")


@dataclass
class DockerEngine:
    """A reachable Docker engine and a thin client for it."""

    host: str
    process: ManagedProcess | None = None
    client: str = field(default_factory=docker_client)

    # --- lifecycle ------------------------------------------------------------------------------
    @classmethod
    def connect_or_start(cls, log_dir: Path) -> DockerEngine:
        """The engine named by DOCKER_HOST or the default socket if it answers, else a private one."""
        for host in (os.environ.get("DOCKER_HOST"), "unix:///var/run/docker.sock"):
            if host and cls(host).answers():
                return cls(host)
        return cls._start_private(log_dir)

    @classmethod
    def _start_private(cls, log_dir: Path) -> DockerEngine:
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise ComponentStartError(
                "docker: no engine answers and dockerd is not installed (run `make deps`)"
            )
        if os.geteuid() != 0:
            raise ComponentStartError(
                "docker: no engine answers (DOCKER_HOST or /var/run/docker.sock) and a private engine"
                " needs root; start Docker or set DOCKER_HOST"
            )
        data_root = cache_root() / "docker"
        # The socket path must stay short (unix socket paths are limited to 107 bytes).
        exec_root = Path(tempfile.gettempdir()) / f"swdocker-{os.getuid()}"
        host = f"unix://{exec_root}/docker.sock"
        engine = cls(host)
        if engine.answers():  # left running by an earlier run that was killed: adopt it
            return engine
        data_root.mkdir(parents=True, exist_ok=True)
        exec_root.mkdir(parents=True, exist_ok=True)
        (exec_root / "docker.pid").unlink(missing_ok=True)
        engine.process = ManagedProcess(
            "dockerd (private)",
            [
                dockerd,
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--bridge=none",
                f"--data-root={data_root}",
                f"--exec-root={exec_root}/exec",
                f"--pidfile={exec_root}/docker.pid",
                f"--host={host}",
            ],
            log_dir / "dockerd.log",
        )
        engine.process.start(ready=engine.answers, timeout=60)
        return engine

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=30)

    def answers(self) -> bool:
        try:
            result = self.run("version", "--format", "{{.Server.Version}}", check=False, timeout=10)
        except (OSError, ComponentStartError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0

    # --- client ---------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1"}

    def run(
        self, *args: str, check: bool = True, timeout: float | None = 120, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.client, *args],
            env=self.env(),
            capture_output=True,
            text=input is None,
            input=input,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args[:3])} … failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False).returncode == 0

    def inspect(self, name: str) -> dict[str, Any]:
        (info,) = json.loads(self.run("inspect", name).stdout)
        return dict(info)

    def remove(self, name: str) -> None:
        self.run("rm", "-f", "-v", name, check=False)

    def logs(self, name: str) -> str:
        result = self.run("logs", name, check=False)
        return result.stdout + result.stderr

    def memory_peak_bytes(self, name: str) -> int | None:
        """The container's peak memory from its cgroup (v1 max_usage, or v2 memory.peak)."""
        container_id = self.inspect(name)["Id"]
        for path in (
            Path(f"/sys/fs/cgroup/memory/docker/{container_id}/memory.max_usage_in_bytes"),
            Path(f"/sys/fs/cgroup/docker/{container_id}/memory.peak"),
            Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.peak"),
        ):
            if path.exists():
                return int(path.read_text().strip())
        return None
