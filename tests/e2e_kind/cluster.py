"""A live streamwatch installation seen through the kubernetes Python client."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.stream import stream

from streamwatch_dev.chart import CHART, helm_binary

T = TypeVar("T")


class ClusterUnreachable(RuntimeError):
    """No Kubernetes API answers with the current kubeconfig, or streamwatch is not installed."""


@dataclass
class Cluster:
    """Namespace, release and API clients of one installation."""

    namespace: str
    release: str
    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi

    @property
    def fullname(self) -> str:
        return f"{self.release}-streamwatch"

    @classmethod
    def connect(cls, namespace: str, release: str) -> Cluster:
        try:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise ClusterUnreachable(f"no usable kubeconfig ({exc}); run `make up` first") from exc
        core = client.CoreV1Api()
        try:
            core.read_namespace(namespace, _request_timeout=10)
        except client.ApiException as exc:
            raise ClusterUnreachable(
                f"namespace {namespace!r} not found ({exc.status}); run `make up`"
            ) from exc
        except Exception as exc:
            raise ClusterUnreachable(f"the Kubernetes API does not answer ({exc}); run `make up`") from exc
        return cls(namespace, release, core, client.AppsV1Api(), client.CustomObjectsApi())

    # --- waiting ----------------------------------------------------------------------------------
    @staticmethod
    def wait(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 5.0) -> T:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                result = probe()
            except Exception as exc:  # noqa: BLE001 - keep polling; reported on timeout
                last = exc
            else:
                if result:
                    return result
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last!r})")

    def pods(self, component: str | None = None) -> list[Any]:
        selector = f"app.kubernetes.io/instance={self.release}"
        if component:
            selector += f",app.kubernetes.io/component={component}"
        return list(self.core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    @staticmethod
    def ready(pod: Any) -> bool:
        if pod.status.phase != "Running" or pod.metadata.deletion_timestamp is not None:
            return False
        return all(c.ready for c in pod.status.container_statuses or [])

    # --- HTTP through the API server's service proxy ------------------------------------------------
    def service_get(self, service: str, port: int, path: str) -> Any:
        api = self.core.api_client
        response = api.call_api(
            f"/api/v1/namespaces/{self.namespace}/services/{service}:{port}/proxy/{path.lstrip('/')}",
            "GET",
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=30,
        )
        return json.loads(response[0].data)

    def prometheus(self, path: str) -> Any:
        body = self.service_get(f"{self.fullname}-prometheus", 9090, path)
        assert body["status"] == "success", body
        return body["data"]

    def alert_state(self, name: str) -> str:
        states = {
            a["state"] for a in self.prometheus("api/v1/alerts")["alerts"] if a["labels"]["alertname"] == name
        }
        return next((s for s in ("firing", "pending") if s in states), "inactive")

    # --- Elasticsearch, from inside its pod (the password never leaves the cluster) ----------------
    def elasticsearch(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        pod = f"{self.fullname}-elasticsearch-0"
        data = f"-H 'Content-Type: application/json' -d '{json.dumps(body)}'" if body is not None else ""
        url = f"http://localhost:9200/{path.lstrip('/')}"
        command = f'curl -fsS -u "elastic:$ELASTIC_PASSWORD" -X {method} {data} "{url}"'
        output = stream(
            self.core.connect_get_namespaced_pod_exec,
            pod,
            self.namespace,
            container="elasticsearch",
            command=["sh", "-c", command],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )
        return json.loads(output)

    # --- changes --------------------------------------------------------------------------------
    def helm_upgrade(self, **values: str) -> None:
        args = [helm_binary(), "upgrade", self.release, str(CHART), "-n", self.namespace, "--reuse-values"]
        for key, value in values.items():
            args += ["--set", f"{key}={value}"]
        subprocess.run(args, check=True, capture_output=True, text=True)

    def scale(self, deployment: str, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(
            f"{self.fullname}-{deployment}", self.namespace, {"spec": {"replicas": replicas}}
        )
