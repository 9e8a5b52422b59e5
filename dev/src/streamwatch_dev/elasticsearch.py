"""A real Elasticsearch 8 node for tests, with x-pack security on (basic auth as ``elastic``).

The node is Elastic's integration-test distribution from Maven Central, unpacked by
``.ci/elasticsearch.sh``: the server plus the transport-netty4, x-pack-core and x-pack-security modules.
That is what the observer and the profile publisher need (index templates, mappings, bulk, search,
aggregations, basic auth). Not in it: the rest-root module, so ``GET /`` answers 405 (the 8.x client
does not call it), and the other modules of the full distribution (painless, ingest, data streams,
analysis-common, ...). Without analysis-common the ``.security`` index cannot be created, so the native
realm (users and API keys made through the API) is unavailable; the reserved user ``elastic`` works.

Quirks: Elasticsearch refuses to run as root, so under root the node runs as ``nobody`` (``setpriv``)
in a run directory under /tmp (removed at stop), from a hard-linked copy of the distribution there (the
cache under ``/root`` is not readable by ``nobody``); its console log stays in ``log_dir``. The
password of ``elastic`` is generated per session and given to the node as ``bootstrap.password`` in its
keystore.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamwatch_dev.process import ComponentStartError, ManagedProcess, deps_cache, free_port
from streamwatch_dev.search import IndexQueries

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

VERSION = os.environ.get("ES_VERSION", "8.19.4")
HEAP = "512m"
USERNAME = "elastic"


def distribution() -> Path:
    """The unpacked distribution that ``.ci/elasticsearch.sh`` put into the cache."""
    home = deps_cache() / f"elasticsearch-{VERSION}"
    if not (home / "bin" / "elasticsearch").exists():
        raise ComponentStartError(
            f"elasticsearch: {home} missing; run `bash .ci/elasticsearch.sh` (or .ci/install-deps.sh)"
        )
    return home


def java_home() -> str:
    """ES_JAVA_HOME, JAVA_HOME, or the JDK/JRE of the ``java`` on PATH (Java 17 or newer)."""
    for var in ("ES_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            return os.environ[var]
    java = shutil.which("java")
    if java is None:
        raise ComponentStartError("elasticsearch: no java on PATH and neither ES_JAVA_HOME nor JAVA_HOME set")
    return str(Path(java).resolve().parents[1])


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link copy (same filesystem: instant, no space); plain copy otherwise. The local node's home
    and the offline cluster's Elasticsearch image context are both made this way from the cache."""

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link, symlinks=True)


@dataclass
class ElasticsearchNode(IndexQueries):
    """One single-node cluster on a loopback port; ``url``, ``username`` and ``password`` reach it."""

    process: ManagedProcess
    port: int
    password: str
    run_dir: Path
    username: str = USERNAME

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The connection settings a service reads (streamwatch_common.search.ElasticsearchSettings)."""
        return {
            "ELASTICSEARCH_URL": self.url,
            "ELASTICSEARCH_USERNAME": self.username,
            "ELASTICSEARCH_PASSWORD": self.password,
        }

    def client(self, **kwargs: Any) -> Elasticsearch:
        from elasticsearch import Elasticsearch

        kwargs.setdefault("request_timeout", 30)
        return Elasticsearch(self.url, basic_auth=(self.username, self.password), **kwargs)

    @classmethod
    def start(cls, log_dir: Path, timeout: float = 180.0) -> ElasticsearchNode:
        dist = distribution()
        port = free_port()
        as_root = os.geteuid() == 0
        if as_root:
            # Under /tmp, not under log_dir: nobody may not be able to reach a checkout under /root.
            run_dir = Path(tempfile.mkdtemp(prefix=f"streamwatch-elasticsearch-{port}-"))
        else:
            run_dir = log_dir / f"elasticsearch-{port}"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
        conf, data, logs, tmp = (run_dir / name for name in ("config", "data", "logs", "tmp"))
        shutil.copytree(dist / "config", conf)
        for path in (data, logs, tmp):
            path.mkdir()
        (conf / "elasticsearch.yml").write_text(
            "\n".join(
                [
                    "cluster.name: streamwatch-test",
                    "node.name: test-node",
                    "network.host: 127.0.0.1",
                    f"http.port: {port}",
                    f"transport.port: {free_port()}",
                    "discovery.type: single-node",
                    f"path.data: {data}",
                    f"path.logs: {logs}",
                    "xpack.security.enabled: true",
                    # Loopback only: plain HTTP with basic auth (the chart's TLS is its own concern).
                    "xpack.security.http.ssl.enabled: false",
                    "xpack.security.transport.ssl.enabled: false",
                    # A busy shared disk must not flip indices to read-only in the middle of a run.
                    "cluster.routing.allocation.disk.threshold_enabled: false",
                    "",
                ]
            )
        )
        prefix: list[str] = []
        home = dist
        if as_root:
            # Elasticsearch refuses root: run as nobody, from a copy nobody can read.
            nobody = pwd.getpwnam("nobody")
            home = run_dir / "home"
            link_tree(dist, home)
            for path in (run_dir, conf, data, logs, tmp):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            for path in conf.rglob("*"):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            prefix = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ES_PATH_CONF": str(conf),
            "ES_JAVA_HOME": java_home(),
            # Without analysis-common the .security index cannot be created (its mapping uses the
            # pattern_capture filter): stop the node from retrying to write built-in roles into it.
            "ES_JAVA_OPTS": f"-Xms{HEAP} -Xmx{HEAP} -Des.queryable_built_in_roles_enabled=false",
            "ES_TMPDIR": str(tmp),
        }
        password = secrets.token_urlsafe(18)
        keystore = subprocess.run(
            [*prefix, str(home / "bin" / "elasticsearch-keystore"), "add", "-x", "-f", "bootstrap.password"],
            input=password,
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if keystore.returncode != 0:
            raise ComponentStartError(
                f"elasticsearch: keystore add failed ({keystore.returncode}):"
                f" {keystore.stdout}{keystore.stderr}"
            )
        process = ManagedProcess(
            f"elasticsearch {VERSION}",
            [*prefix, str(home / "bin" / "elasticsearch")],
            log_dir / f"elasticsearch-{port}.log",
            env=env,
            cwd=run_dir,
        )
        node = cls(process, port, password, run_dir)
        process.start(ready=node._ready, timeout=timeout)
        return node

    def _ready(self) -> bool:
        health = self.request("GET", "/_cluster/health?wait_for_status=green&timeout=1s")
        return bool(health.get("status") == "green")

    def stop(self) -> None:
        self.process.stop(timeout=30)
        if self.run_dir.is_relative_to(tempfile.gettempdir()):
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # direct queries ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        """One JSON request; raises RuntimeError on a status >= 400 (with the node's answer)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if auth:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"elasticsearch {method} {path}: {exc.code} {exc.read()[:500]!r}") from exc
        return json.loads(payload) if payload else None

    def memory_rss_kib(self) -> int:
        """Resident memory of the node's processes (launcher and server JVM), from /proc."""
        total = 0
        for pid in _descendants(self.process.pid):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for parent in found:
        # Every thread's children: the launcher JVM forks the server JVM from a thread other than main.
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                found.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return found
