"""One streamwatch installation on the offline kind cluster (k8s/offline/README.md), made by
:func:`offline_release` and read the way a user reads it: kubectl, helm, and what the services themselves
report (Prometheus through the API server's service proxy; Elasticsearch and Kafka from inside an observer
pod, so no password or broker leaves the cluster). The kind tests and the by-hand cluster benchmarks share
it."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.images import BuildResult
from streamwatch_dev.kind import NAMESPACE, OFFLINE, RELEASE, KindSandbox, image_archive, kind_sh_tags
from streamwatch_dev.process import wait_until
from streamwatch_dev.s3 import credentials_secret

T = TypeVar("T")

# Run inside an observer pod (its image has confluent-kafka, its environment the brokers): every record
# of both topics, so the copy is compared offset for offset, and the end offsets of each.
_TOPICS_SCRIPT = """
import json, os, sys
from confluent_kafka import Consumer, TopicPartition
conf = {"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "e2e-kind-reader",
        "enable.auto.commit": False}
topics = sys.argv[1:]
consumer = Consumer(conf)
result = {}
for topic in topics:
    meta = consumer.list_topics(topic, timeout=20).topics[topic]
    values = {}
    for p in sorted(meta.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)
        records = []
        if high > low:
            consumer.assign([TopicPartition(topic, p, low)])
            while len(records) < high - low:
                m = consumer.poll(10)
                if m is None:
                    break
                if m.error():
                    raise SystemExit(str(m.error()))
                records.append((m.offset(), (m.value() or b"").hex()))
        values[p] = {"low": low, "high": high, "records": records}
    result[topic] = values
consumer.close()
print(json.dumps(result))
"""

# Run inside an observer pod: the high watermark of every partition of each topic named.
_END_OFFSETS_SCRIPT = """
import json, os, sys
from confluent_kafka import Consumer, TopicPartition
consumer = Consumer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "kind-reader"})
result = {}
for topic in sys.argv[1:]:
    meta = consumer.list_topics(topic, timeout=20).topics[topic]
    result[topic] = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1]
                     for p in sorted(meta.partitions)}
consumer.close()
print(json.dumps(result))
"""

# Run inside an observer pod: a search of the observation index with the pod's own credentials.
_SEARCH_SCRIPT = """
import base64, json, os, sys, urllib.request
url = os.environ["ELASTICSEARCH_URL"].rstrip("/") + "/" + sys.argv[1]
user, password = os.environ["ELASTICSEARCH_USERNAME"], os.environ["ELASTICSEARCH_PASSWORD"]
auth = base64.b64encode(f"{user}:{password}".encode())
request = urllib.request.Request(url, data=sys.argv[2].encode() if len(sys.argv) > 2 else None,
    headers={"Authorization": "Basic " + auth.decode(), "Content-Type": "application/json"})
print(urllib.request.urlopen(request, timeout=30).read().decode())
"""

# Run inside the visits writer's pod (its image has deltalake, its environment the tables' locations and
# the object store's connection): the source coordinates of every row of both Delta tables.
_DELTA_SCRIPT = """
import json
from deltalake import DeltaTable
from streamwatch_visits_writer.settings import VisitsWriterSettings
settings = VisitsWriterSettings()
rows = []
for path in (settings.visits_table_path, settings.dead_letter_table_path):
    options = settings.storage_options(path)
    if DeltaTable.is_deltatable(path, storage_options=options):
        table = DeltaTable(path, storage_options=options).to_pyarrow_table(columns=["partition", "offset"])
        rows += zip(table.column("partition").to_pylist(), table.column("offset").to_pylist())
print(json.dumps(rows))
"""


@dataclass
class LogFollower:
    process: subprocess.Popen[str]

    def wait_for_end(self, timeout: float) -> str:
        out, _ = self.process.communicate(timeout=timeout)
        return out


@dataclass
class Cluster:
    """The release ``sw`` in namespace ``streamwatch`` of the sandbox's cluster."""

    sandbox: KindSandbox

    fullname = f"{RELEASE}-streamwatch"
    namespace = NAMESPACE
    release = RELEASE

    # --- waiting ----------------------------------------------------------------------------------
    @staticmethod
    def wait(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 3.0) -> T:
        """The project's one polling loop (``wait_until``), typed for what the probe returns."""
        return cast(T, wait_until(probe, timeout, interval=interval, what=what))

    # --- kubectl ------------------------------------------------------------------------------------
    def pods(self, component: str | None = None) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.release}"
        if component:
            selector += f",app.kubernetes.io/component={component}"
        return list(self.sandbox.kubectl_json("get", "pods", "-l", selector)["items"])

    @staticmethod
    def ready(pod: dict[str, Any]) -> bool:
        if pod["status"].get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
            return False
        statuses = pod["status"].get("containerStatuses") or []
        return bool(statuses) and all(s.get("ready") for s in statuses)

    def ready_pods(self, component: str) -> list[str]:
        return sorted(p["metadata"]["name"] for p in self.pods(component) if self.ready(p))

    def wait_ready(self, component: str, count: int, timeout: float = 300) -> list[str]:
        """Exactly ``count`` pods of the component, all Ready (none terminating)."""

        def settled() -> list[str] | None:
            pods = self.pods(component)
            names = self.ready_pods(component)
            return names if len(names) == count and len(pods) == count else None

        try:
            return self.wait(f"{count} {component} pod(s) ready", settled, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.sandbox.diagnose()}") from exc

    def deployment(self, component: str) -> str:
        return f"deployment/{self.fullname}-{component}"

    def scale(self, component: str, replicas: int) -> None:
        self.sandbox.kubectl("scale", self.deployment(component), f"--replicas={replicas}")

    def helm_upgrade(self, *sets: str, timeout: int = 600, wait: bool = True) -> None:
        """``helm upgrade --reuse-values --set ... --wait``, as a user changes one setting; without
        ``wait``, helm returns once the release is updated and the pods roll on."""
        args = [arg for s in sets for arg in ("--set", s)]
        waiting = ["--wait", "--timeout", f"{timeout}s"] if wait else []
        self.sandbox.helm(
            "upgrade", self.release, "charts/streamwatch", "--reuse-values", *args, *waiting,
            timeout=timeout + 60,
        )  # fmt: skip

    def rollout_status(self, component: str, timeout: int = 300) -> None:
        """``kubectl rollout status``: the component's Deployment has rolled onto its new template."""
        self.sandbox.kubectl(
            "rollout", "status", self.deployment(component), f"--timeout={timeout}s", timeout=timeout + 60
        )

    def upgrade_dry_run(self, *sets: str) -> subprocess.CompletedProcess[str]:
        """``helm upgrade --reuse-values --set ... --dry-run=server``: rendered against the live API server
        (lookup and its discovery answer), nothing applied."""
        args = [arg for s in sets for arg in ("--set", s)]
        return self.sandbox.helm(
            "upgrade", self.release, "charts/streamwatch", "--reuse-values", *args, "--dry-run=server",
            check=False,
        )  # fmt: skip

    @contextmanager
    def follow_logs(self, pod: str) -> Iterator[LogFollower]:
        """``kubectl logs -f POD``, read until the container ends (its last lines included)."""
        command = self.sandbox.command("kubectl", "--namespace", self.namespace, "logs", "-f", pod)
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as p:
            try:
                yield LogFollower(p)
            finally:
                if p.poll() is None:
                    p.kill()

    def logs(self, selector: str, *args: str) -> str:
        return self.sandbox.kubectl("logs", "-l", selector, "--prefix", "--tail=-1", *args).stdout

    @staticmethod
    def log_events(text: str) -> list[dict[str, Any]]:
        """The JSON lines of one pod's log (the services' own; Spark's and the JVM's others are not)."""
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def pod_events(self, pod: str) -> list[dict[str, Any]]:
        """The JSON lines of the pod's log so far, oldest first."""
        return self.log_events(self.sandbox.kubectl("logs", pod).stdout)

    def batch_progress(self, pod: str) -> list[dict[str, Any]]:
        """A Spark job's batch_progress lines, one per batch, oldest first."""
        return [e for e in self.pod_events(pod) if e.get("event") == "batch_progress"]

    def executor_pods(self, job: str) -> list[dict[str, Any]]:
        """A Spark job's executor pods, terminating ones included (Spark labels them spark-role=executor,
        the chart's pod template with the job's component and `-executor`)."""
        selector = f"spark-role=executor,app.kubernetes.io/component={job}-executor"
        return list(self.sandbox.kubectl_json("get", "pods", "-l", selector)["items"])

    # --- the services' own answers ------------------------------------------------------------------
    def prometheus(self, path: str) -> Any:
        raw = self.sandbox.kubectl(
            "get", "--raw",
            f"/api/v1/namespaces/{self.namespace}/services/{self.fullname}-prometheus:9090/proxy/{path}",
        ).stdout  # fmt: skip
        body = json.loads(raw)
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.prometheus("api/v1/alerts")["alerts"] if a["labels"]["alertname"] == name]

    def alert_state(self, name: str) -> str:
        states = {a["state"] for a in self.alerts(name)}
        return next((s for s in ("firing", "pending") if s in states), "inactive")

    def _in_observer(self, script: str, *args: str, timeout: float = 120) -> str:
        pod = self.ready_pods("observer")[0]
        return self.sandbox.kubectl(
            "exec", "-i", pod, "-c", "observer", "--", "python", "-", *args, input=script, timeout=timeout
        ).stdout

    def delta_coordinates(self) -> list[tuple[int, int]]:
        """(partition, offset) of every row of the visits writer's two Delta tables (visits and dead
        letters), read from where the release keeps them."""
        (pod,) = self.ready_pods("visits-writer")
        out = self.sandbox.kubectl(
            "exec", "-i", pod, "-c", "visits-writer", "--", "python", "-", input=_DELTA_SCRIPT, timeout=300
        ).stdout
        return [(int(p), int(o)) for p, o in json.loads(out)]

    def search(self, path: str, body: dict[str, Any] | None = None) -> Any:
        args = [path] + ([json.dumps(body)] if body is not None else [])
        return json.loads(self._in_observer(_SEARCH_SCRIPT, *args))

    def window_documents(self, index: str) -> list[dict[str, Any]]:
        self.search(f"{index}/_refresh")
        body = {"size": 10000, "query": {"term": {"doc_type": "window"}}}
        hits = self.search(f"{index}/_search", body)["hits"]["hits"]
        return [{"_id": h["_id"], **h["_source"]} for h in hits]

    def end_offsets(self, *topics: str) -> dict[str, dict[int, int]]:
        """Topic → partition → high watermark, without reading the records."""
        raw = json.loads(self._in_observer(_END_OFFSETS_SCRIPT, *topics))
        return {t: {int(p): int(o) for p, o in parts.items()} for t, parts in raw.items()}

    def topics(self, *topics: str) -> dict[str, dict[int, dict[str, Any]]]:
        """Topic → partition → low, high and every (offset, value hex) record."""
        raw = json.loads(self._in_observer(_TOPICS_SCRIPT, *topics, timeout=300))
        return {t: {int(p): v for p, v in parts.items()} for t, parts in raw.items()}


@contextmanager
def offline_release(
    engine: DockerEngine,
    service_images: dict[str, BuildResult],
    infra_images: dict[str, str],
    log_dir: Path,
    *,
    values_files: Sequence[Path],
    store_secret: str,
) -> Iterator[Cluster]:
    """The offline cluster with the chart installed by ``k8s/kind.sh up`` (``helm install --wait``,
    ``helm test``) from the offline values and then ``values_files``; removed on leaving.

    ``store_secret`` names the object store's credentials Secret (made here, with a fresh password for
    this cluster only) that ``k8s/offline/seaweedfs.yaml`` and the values refer to."""
    sandbox = KindSandbox.prepare(log_dir)
    try:
        tags = kind_sh_tags()
        refs = {build.ref: tags[service] for service, build in service_images.items()}
        refs.update({ref: ref for ref in infra_images.values()})
        # Saving the images (the host's engine) and making the nodes (the sandbox's) need nothing of each
        # other: both at once.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-archive") as saver:
            saving = saver.submit(image_archive, engine, refs, log_dir / "images.tar")
            sandbox.create_cluster()
            archive = saving.result()
        secret_file = log_dir / f"{store_secret}.yaml"
        secret = credentials_secret(store_secret, "streamwatch-e2e", secrets.token_urlsafe(24))
        secret_file.write_text(yaml.safe_dump(secret))
        secret_file.chmod(0o600)
        sandbox.up(
            archive,
            values_files=[OFFLINE / "values.yaml", *values_files],
            extra_manifests=[OFFLINE / "kafka.yaml", secret_file, OFFLINE / "seaweedfs.yaml"],
            wait_seconds=900,
        )
        archive.unlink()
        secret_file.unlink()
        yield Cluster(sandbox)
    finally:
        sandbox.down()
