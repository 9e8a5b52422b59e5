"""A real S3-compatible object store for tests: SeaweedFS (``weed mini``: master, volume, filer and S3
gateway in one process) on loopback ports, built from the Go module proxy by ``.ci/seaweedfs.sh``.

Requests are signed: one identity, its access key and a secret generated per session, is given to the
gateway in its S3 config file; an unsigned or wrongly signed request is refused as by AWS.

>>> store = S3Server.start(Path("test-output/_infra"))
>>> store.create_bucket("checkpoints")
>>> store.env()  # {"S3_ENDPOINT_URL": "http://127.0.0.1:...", "AWS_ACCESS_KEY_ID": ..., ...}
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamwatch_dev.process import REPO_ROOT, ComponentStartError, ManagedProcess, deps_cache, free_port

VERSION = os.environ.get("SEAWEEDFS_VERSION", "v0.0.0-20261109003541-7506e5f91cd6")
ACCESS_KEY = "streamwatch-tests"
REGION = "us-east-1"
START_TIMEOUT = 90.0


BUILD_SCRIPT = REPO_ROOT / ".ci" / "seaweedfs.sh"
# The build a test session started early (build_in_background), which weed_binary waits for.
_background: subprocess.Popen[bytes] | None = None


def _cached_binary() -> Path:
    return deps_cache() / f"seaweedfs-{VERSION}" / "weed"


def build_in_background(log: Path) -> subprocess.Popen[bytes] | None:
    """Start ``.ci/seaweedfs.sh`` at the lowest CPU priority unless ``weed`` is built already (None). A cold
    build takes minutes; started when a session begins, it overlaps the tests before the first that needs
    the store, and :func:`weed_binary` waits for it."""
    global _background  # noqa: PLW0603 - one build per test session, found again by weed_binary
    if _cached_binary().is_file():
        return None
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        _background = subprocess.Popen(
            ["nice", "-n", "19", "bash", str(BUILD_SCRIPT)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "SEAWEEDFS_VERSION": VERSION},
            cwd=REPO_ROOT, start_new_session=True,
        )  # fmt: skip
    return _background


def weed_binary() -> Path:
    """The ``weed`` that ``.ci/seaweedfs.sh`` built into the cache: waits for a background build, and
    builds it now when none made it (a failed build names its log's end)."""
    binary = _cached_binary()
    if _background is not None and _background.poll() is None:
        print("[seaweedfs] waiting for the background build of weed", file=sys.stderr, flush=True)
        _background.wait()
    if not binary.is_file():
        print(f"[seaweedfs] building {binary} (a few minutes)", file=sys.stderr, flush=True)
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, cwd=REPO_ROOT, check=False,
            env={**os.environ, "SEAWEEDFS_VERSION": VERSION},
        )  # fmt: skip
        if result.returncode != 0 or not binary.is_file():
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
            raise ComponentStartError(f"seaweedfs: building {binary} failed (`bash {BUILD_SCRIPT}`):\n{tail}")
    return binary


def s3_config(access_key: str, secret_key: str) -> str:
    """SeaweedFS's S3 configuration (``-s3.config``) with one identity allowed everything: the key pair
    the services sign with."""
    identity = {"accessKey": access_key, "secretKey": secret_key}
    actions = ["Admin", "Read", "Write", "List", "Tagging"]
    user = {"name": "streamwatch", "credentials": [identity], "actions": actions}
    return json.dumps({"identities": [user]})


def credentials_secret(name: str, access_key: str, secret_key: str) -> dict[str, Any]:
    """A Kubernetes Secret holding the key pair as the chart's ``objectStore.credentialsSecret`` reads it
    and the same pair as SeaweedFS's ``s3.json`` (k8s/offline/seaweedfs.yaml mounts it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "streamwatch-offline"}},
        "type": "Opaque",
        "stringData": {
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "s3.json": s3_config(access_key, secret_key),
        },
    }


@dataclass
class S3Server:
    """A running SeaweedFS with its S3 gateway on :attr:`endpoint`, its data under ``home``."""

    process: ManagedProcess
    port: int
    home: Path
    secret_key: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, log_dir: Path) -> S3Server:
        binary = weed_binary()
        port = free_port()
        home = log_dir / f"seaweedfs-{port}"
        shutil.rmtree(home, ignore_errors=True)
        (home / "data").mkdir(parents=True)
        secret = secrets.token_urlsafe(24)
        config = home / "s3.json"
        config.write_text(s3_config(ACCESS_KEY, secret))
        config.chmod(0o600)
        ports = {
            name: free_port()
            for name in (
                "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc",
            )
        }  # fmt: skip
        command = [
            str(binary), "mini", f"-dir={home / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{name}={value}" for name, value in ports.items()),
            f"-s3.port={port}", f"-s3.config={config}",
            # What the tests do not use stays off: no port of theirs to collide. Not the admin server:
            # `weed mini` always starts it and stops the whole process when it cannot be reached.
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav.port=0", "-admin.port.legacy=0",
            "-debug.port=0",
        ]  # fmt: skip
        process = ManagedProcess(f"seaweedfs {VERSION}", command, log_dir / f"seaweedfs-{port}.log")
        server = cls(process, port, home, secret)
        process.start(ready=server._ready, timeout=START_TIMEOUT)
        return server

    def _ready(self) -> bool:
        # The gateway answers 403 to an unsigned request once it serves; before, the connection fails.
        try:
            urllib.request.urlopen(self.endpoint, timeout=2)
        except urllib.error.HTTPError as exc:
            return exc.code == 403
        except OSError:
            return False
        return True

    def stop(self) -> None:
        self.process.stop(timeout=30)
        shutil.rmtree(self.home / "data", ignore_errors=True)

    def env(self, secret_key: str | None = None) -> dict[str, str]:
        """A service's environment for this store (``secret_key``: another secret, to be refused)."""
        return {
            "S3_ENDPOINT_URL": self.endpoint,
            "S3_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.secret_key if secret_key is None else secret_key,
        }

    def filesystem(self) -> Any:
        """A ``pyarrow.fs.S3FileSystem`` signed with this store's identity (buckets may be created)."""
        from pyarrow import fs

        return fs.S3FileSystem(
            access_key=ACCESS_KEY,
            secret_key=self.secret_key,
            endpoint_override=f"127.0.0.1:{self.port}",
            scheme="http",
            region=REGION,
            allow_bucket_creation=True,
        )

    def create_bucket(self, name: str) -> str:
        self.filesystem().create_dir(name)
        return name

    def upload(self, directory: Path, url: str) -> None:
        """Copy a local directory tree to ``s3://bucket/prefix`` (what a job writing there leaves)."""
        from pyarrow import fs

        destination = url.removeprefix("s3://")
        fs.copy_files(str(directory.resolve()), destination, fs.LocalFileSystem(), self.filesystem())
