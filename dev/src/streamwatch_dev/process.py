"""Start real processes on loopback, wait for real readiness, stop them cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO


def _repo_root() -> Path:
    """The checkout this package is installed from (editable, as a workspace member): the directory
    holding the chart. Everything here works on that checkout's files (chart, logs, test output)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "charts" / "streamwatch" / "Chart.yaml").is_file():
            return parent
    raise RuntimeError(f"streamwatch_dev is not inside a streamwatch checkout: {__file__}")


REPO_ROOT = _repo_root()
OUTPUT_ROOT = REPO_ROOT / "test-output"


def deps_cache() -> Path:
    """Where ``make deps`` (the ``.ci`` scripts) puts what it resolves and builds, outside the repository:
    ``${XDG_CACHE_HOME:-~/.cache}/streamwatch``, as the scripts spell it."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "streamwatch"


def maven_libs(name: str, override: str) -> Path:
    """The jar directory ``.ci/maven-libs.sh NAME`` fills; the environment variable ``override`` names
    another."""
    if override in os.environ:
        return Path(os.environ[override])
    return deps_cache() / name / "libs"


class ComponentStartError(RuntimeError):
    """A real component of the harness could not be started; the message says which and why."""


def free_port() -> int:
    """A loopback port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 0.2, what: str = "condition"
) -> object:
    """Poll until the predicate returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception as exc:  # noqa: BLE001 - polling: remember the error, report it on timeout
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)
    detail = f" (last error: {last_error!r})" if last_error else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


class ManagedProcess:
    """A subprocess whose output goes to a log file, with readiness and clean stop."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, ready: Callable[[], object] | None = None, timeout: float = 30.0) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise ComponentStartError(f"{self.name}: cannot execute {self.argv[0]}: {exc}") from exc
        if ready is not None:
            self.wait_ready(ready, timeout)
        return self

    def wait_ready(self, ready: Callable[[], object], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ComponentStartError(
                    f"{self.name} exited with code {self.proc.returncode} during start;"
                    f" log tail:\n{self.tail()}"
                )
            try:
                if ready():
                    return
            except Exception as exc:  # noqa: BLE001 - not ready yet; reported on timeout
                last = exc
            time.sleep(0.1)
        self.stop()
        raise ComponentStartError(
            f"{self.name} not ready within {timeout:.0f}s (last error: {last!r}); log tail:\n{self.tail()}"
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL to the whole process group after the timeout."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the process group: a crash, not a shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
