"""The rendered chart's wiring, made local: what a service process gets when it runs on this machine.

A container's environment is taken as the chart renders it. Only what cannot hold outside a cluster
changes: in-cluster addresses (the Strimzi bootstrap, the Services) become the local components' addresses,
mount paths become local directories (a claim is one directory per claim name, so two pods sharing a claim
share it, as in the cluster), Secrets are read from the rendered Secret objects, and every port a container
declares moves to a free local port (env values naming that port follow). The chart-driven test run and
``make demo`` both start services this way, so the chart stays the one wiring source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamwatch_dev.process import free_port
from streamwatch_dev.workloads import Container, Manifest, by_kind, secret_value

# How the chart's default public URLs name a service reached by `kubectl port-forward`: locally a container's
# own such URL points at the port its process listens on.
_PORT_FORWARD_HOST = "http://localhost"


def kafka_bootstraps(manifests: list[Manifest]) -> list[str]:
    """The bootstrap addresses the Strimzi operator derives from each rendered ``Kafka`` resource."""
    return [
        f"{kafka['metadata']['name']}-kafka-bootstrap:{listener['port']}"
        for kafka in by_kind(manifests, "Kafka")
        for listener in kafka["spec"]["kafka"]["listeners"]
    ]


def _service_urls(manifests: list[Manifest], component: str) -> list[tuple[str, Any]]:
    """``(http://<service>:<port>, targetPort)`` of every rendered Service selecting ``component``."""
    return [
        (f"http://{svc['metadata']['name']}:{port['port']}", port.get("targetPort", port["port"]))
        for svc in by_kind(manifests, "Service")
        if svc["spec"].get("selector", {}).get("app.kubernetes.io/component") == component
        for port in svc["spec"]["ports"]
    ]


def infrastructure_hosts(
    manifests: list[Manifest], kafka: str, local_urls: Mapping[str, str]
) -> dict[str, str]:
    """In-cluster address → local address for the infrastructure: the Kafka bootstrap and the Services of
    the components named in ``local_urls`` (component → local base URL, e.g. ``pushgateway``)."""
    hosts = dict.fromkeys(kafka_bootstraps(manifests), kafka)
    for component, url in local_urls.items():
        hosts.update({cluster: url for cluster, _ in _service_urls(manifests, component)})
    return hosts


def declared_ports(c: Container) -> dict[str, int]:
    """Port name → container port, for the ports the container declares."""
    return {str(p.get("name", p["containerPort"])): int(p["containerPort"]) for p in c.spec.get("ports", [])}


def local_ports(c: Container) -> dict[int, int]:
    """Container port → a free local port, for every port the container declares."""
    return {port: free_port() for port in declared_ports(c).values()}


def service_hosts(manifests: list[Manifest], c: Container, ports: Mapping[int, int]) -> dict[str, str]:
    """In-cluster addresses of one of our services (its Services) → the local port its process listens on."""
    names = declared_ports(c)
    hosts = {}
    for cluster, target in _service_urls(manifests, c.component):
        container_port = names[target] if isinstance(target, str) else int(target)
        if container_port in ports:
            hosts[cluster] = f"http://127.0.0.1:{ports[container_port]}"
    return hosts


def probe_port(c: Container, ports: Mapping[int, int], kind: str = "readinessProbe") -> int | None:
    """The local port of the container's HTTP probe (its ops endpoint), if it has one."""
    probe = c.spec.get(kind, {}).get("httpGet")
    if probe is None:
        return None
    port = probe["port"]
    container_port = declared_ports(c)[port] if isinstance(port, str) else int(port)
    return ports.get(container_port)


def _volume_dirs(c: Container, root: Path) -> dict[str, Path]:
    """Mount path → local directory. Claims map by claim name, so two pods sharing a claim share a dir."""
    volumes = {v["name"]: v for v in c.pod_spec.get("volumes", [])}
    mapping = {}
    for mount in c.spec.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "persistentVolumeClaim" in volume:
            local = root / "claims" / volume["persistentVolumeClaim"]["claimName"]
        elif "hostPath" in volume:
            local = root / "host" / volume["hostPath"]["path"].strip("/")
        else:
            local = root / "pods" / c.component / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        mapping[mount["mountPath"]] = local
    return mapping


@dataclass(frozen=True)
class LocalContainer:
    """One rendered container as a local process: its command, environment and mounted directories."""

    source: Container
    command: list[str]
    env: dict[str, str]
    mounts: dict[str, Path]

    @property
    def name(self) -> str:
        return str(self.source.spec["name"])


# The pod fields a container's environment may take from the downward API, for a local process.
_LOCAL_FIELDS = {"metadata.name": "{pod}-local", "metadata.namespace": "default"}


def local_container(
    c: Container,
    manifests: list[Manifest],
    hosts: Mapping[str, str],
    root: Path,
    ports: Mapping[int, int] | None = None,
) -> LocalContainer:
    """The container's command and environment as the chart renders them, with cluster addresses, mount
    paths and ``ports`` (container port → local port) made local. Without ``ports``, ``OPS_PORT`` is
    dropped: the process runner picks a free one."""
    mounts = _volume_dirs(c, root)
    own = {f"{_PORT_FORWARD_HOST}:{cp}": f"http://127.0.0.1:{local}" for cp, local in (ports or {}).items()}
    env: dict[str, str] = {}
    for name, var in c.env().items():
        if "fieldRef" in var.get("valueFrom", {}):
            # The downward API, as a local process stands for the pod: its own name, the release's namespace.
            value = _LOCAL_FIELDS[var["valueFrom"]["fieldRef"]["fieldPath"]].format(
                pod=c.workload["metadata"]["name"]
            )
        elif "valueFrom" in var:
            value = secret_value(manifests, var["valueFrom"]["secretKeyRef"])
        else:
            value = str(var["value"])
        for cluster, local in {**hosts, **own}.items():
            value = value.replace(cluster, local)
        for mount_path, local_dir in sorted(mounts.items(), key=lambda item: -len(item[0])):
            if value == mount_path or value.startswith(mount_path + "/"):
                value = str(local_dir) + value[len(mount_path) :]
                break
        if ports and value.isdigit() and int(value) in ports:  # a port the container listens on
            value = str(ports[int(value)])
        env[name] = value
    if not ports:
        env.pop("OPS_PORT", None)
    command = [*c.spec.get("command", []), *c.spec.get("args", [])]
    return LocalContainer(c, command, env, mounts)
