"""Run a container of the rendered chart as a Docker container, wired the way its pod spec wires it.

What the pod spec says becomes ``docker run`` options: command and args, env (Secrets read from the
rendered Secret objects), user and group, fsGroup, read-only root filesystem, dropped capabilities,
no privilege escalation, CPU and memory limits, and the termination grace period as the stop timeout.
emptyDirs become tmpfs mounts (executable, like a node's emptyDir directory; a tmpfs over a directory of
the image takes that directory's mode), or, for containers started as one pod (``pod=``), directories
made as the kubelet makes them, which they share (an init container filling one for the main container);
claims (a StatefulSet's volumeClaimTemplates too) and hostPaths become host directories owned the way
fsGroup makes them (group fsGroup, setgid, group-writable), so two pods sharing a claim share a directory;
configMaps become read-only files written from the rendered ConfigMaps. A container without a command runs
its image's entrypoint with its args, as the kubelet runs it. Containers use the host's network, so the
in-cluster host names are pointed at local ports and every port a container declares is moved to a free
local port (the env values that name that port follow).
"""

from __future__ import annotations

import http.client
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.process import free_port, wait_until
from streamwatch_dev.prometheus import http_get
from streamwatch_dev.workloads import Container, secret_value

Manifest = dict[str, Any]
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G)?$")
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FACTORS = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}


def quantity_bytes(value: str) -> int:
    match = _QUANTITY.match(str(value))
    if match is None or match.group(2) == "m":
        raise ValueError(f"not a memory quantity: {value!r}")
    return int(float(match.group(1)) * _FACTORS[match.group(2)])


def quantity_cpus(value: str | int | float) -> str:
    text = str(value)
    return str(int(text[:-1]) / 1000) if text.endswith("m") else text


def _security(c: Container) -> dict[str, Any]:
    """The effective security context: the container's fields over the pod's."""
    return {**c.pod_spec.get("securityContext", {}), **c.spec.get("securityContext", {})}


@dataclass
class ContainerRun:
    """One container of the chart, started in Docker."""

    engine: DockerEngine
    name: str
    source: Container
    ports: dict[int, int]  # container port -> local port
    env: dict[str, str]
    argv: list[str]
    started_at: float = 0.0
    ready_seconds: float | None = None
    stop_seconds: float | None = None
    exit_code: int | None = None
    peak_memory_bytes: int | None = None

    @property
    def grace_seconds(self) -> int:
        return int(self.source.pod_spec.get("terminationGracePeriodSeconds", 30))

    def probe_url(self, kind: str = "readinessProbe") -> str | None:
        probe = self.source.spec.get(kind, {}).get("httpGet")
        if probe is None:
            return None
        port = probe["port"]
        if isinstance(port, str):
            (port,) = [p["containerPort"] for p in self.source.spec.get("ports", []) if p["name"] == port]
        return f"http://127.0.0.1:{self.ports[int(port)]}{probe['path']}"

    def url(self, container_port: int, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[container_port]}{path}"

    def start(self) -> ContainerRun:
        self.engine.remove(self.name)
        self.engine.run(*self.argv)
        self.started_at = time.monotonic()
        return self

    def wait_ready(self, timeout: float) -> ContainerRun:
        """Wait for the readiness probe to answer 200, as the kubelet would before routing traffic."""
        url = self.probe_url()
        assert url is not None, f"{self.name}: no HTTP readiness probe in the chart"

        deadline = time.monotonic() + timeout
        while True:
            # Checked outside the probe's error handling: a container that exited fails at once.
            if not self.engine.inspect(self.name)["State"]["Running"]:
                raise AssertionError(f"{self.name} exited during start:\n{self.logs()[-3000:]}")
            try:
                if http_get(url, timeout=2):
                    break
            except (OSError, http.client.HTTPException) as exc:  # not listening yet, or not ready (5xx)
                error: Exception | None = exc
            else:
                error = None
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} not ready within {timeout:.0f}s ({url}; last error: {error!r})\n"
                    f"{self.logs()[-3000:]}"
                )
            time.sleep(0.5)
        self.ready_seconds = round(time.monotonic() - self.started_at, 1)
        return self

    def wait_exit(self, timeout: float) -> int:
        """Wait for the container to end by itself; its peak memory is read while it runs (the cgroup
        goes with it)."""

        def exited() -> bool:
            self.peak_memory_bytes = self.engine.memory_peak_bytes(self.name) or self.peak_memory_bytes
            state = self.engine.inspect(self.name)["State"]
            self.exit_code = None if state["Running"] else int(state["ExitCode"])
            return self.exit_code is not None

        wait_until(exited, timeout, interval=0.5, what=f"container {self.name} to exit")
        assert self.exit_code is not None
        return self.exit_code

    def stop(self) -> int:
        """``docker stop`` with the pod's grace period: SIGTERM, then SIGKILL when the grace runs out."""
        self.peak_memory_bytes = self.engine.memory_peak_bytes(self.name)
        start = time.monotonic()
        self.engine.run("stop", "-t", str(self.grace_seconds), self.name, timeout=self.grace_seconds + 30)
        self.stop_seconds = round(time.monotonic() - start, 1)
        self.exit_code = int(self.engine.inspect(self.name)["State"]["ExitCode"])
        return self.exit_code

    def logs(self) -> str:
        return self.engine.logs(self.name)

    def process_uids(self) -> set[int]:
        """Real, effective, saved and filesystem uids of the container's main process, read on the host."""
        pid = self.engine.inspect(self.name)["State"]["Pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        (line,) = [ln for ln in status.splitlines() if ln.startswith("Uid:")]
        return {int(u) for u in line.split()[1:]}

    @property
    def mount_targets(self) -> set[str]:
        return {m["mountPath"] for m in self.source.spec.get("volumeMounts", [])}

    def changed_paths(self) -> list[str]:
        """What ``docker diff`` lists, less the mount points Docker itself creates: paths the container
        wrote to its root filesystem, outside its mounts."""
        points = {str(Path(t)) for t in self.mount_targets}
        points |= {str(parent) for t in self.mount_targets for parent in Path(t).parents}
        changes = [
            ln.split(" ", 1) for ln in self.engine.run("diff", self.name).stdout.splitlines() if ln.strip()
        ]
        return [f"{kind} {path}" for kind, path in changes if not (kind in "AC" and path in points)]


@dataclass
class ChartWiring:
    """Turns rendered chart containers into ``docker run`` commands on one machine."""

    engine: DockerEngine
    manifests: list[Manifest]
    hosts: dict[str, str]  # in-cluster address -> local address, replaced inside env values
    root: Path  # claims, hostPaths and per-pod directories live under it
    secrets: list[Manifest] | None = None  # where secretKeyRefs resolve; default: the rendered Secrets
    label: str = "streamwatch-test"
    namespace: str = "default"  # what a fieldRef to metadata.namespace gives
    service_ports: dict[str, int] = field(default_factory=dict)  # "host:port" of a Service -> local port

    def claim_dir(self, volume: Mapping[str, Any]) -> Path:
        """A claim's or hostPath's directory: two pods naming the same claim share it."""
        if "persistentVolumeClaim" in volume:
            path = self.root / "claims" / str(volume["persistentVolumeClaim"]["claimName"])
        else:
            path = self.root / "host" / str(volume["hostPath"]["path"]).strip("/")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pod_dir(self, pod: str, volume: str, fs_group: int | None) -> Path:
        """An emptyDir of one pod, as the kubelet makes it: root's, world-writable, and with an fsGroup
        that group's with setgid. The containers started with the same ``pod`` share it."""
        path = self.root / "pods" / pod / volume
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, 0, fs_group if fs_group is not None else 0)
        path.chmod(0o2777 if fs_group is not None else 0o777)
        return path

    def config_map_dir(self, volume: Mapping[str, Any]) -> Path:
        """A configMap volume's files, written from the rendered ConfigMap (and its ``items``)."""
        name = str(volume["configMap"]["name"])
        (config_map,) = [
            m for m in self.manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == name
        ]
        data: dict[str, str] = config_map.get("data", {})
        items = volume["configMap"].get("items") or [{"key": key, "path": key} for key in data]
        path = self.root / "configmaps" / name
        for item in items:
            target = path / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])
            target.chmod(0o644)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _pod_volumes(self, c: Container) -> dict[str, Mapping[str, Any]]:
        """The pod's volumes, with a StatefulSet's volumeClaimTemplates as the claims of its pod 0."""
        volumes: dict[str, Mapping[str, Any]] = {v["name"]: v for v in c.pod_spec.get("volumes", [])}
        if c.workload["kind"] == "StatefulSet":
            workload = c.workload["metadata"]["name"]
            for template in c.workload["spec"].get("volumeClaimTemplates", []):
                claim = f"{template['metadata']['name']}-{workload}-0"
                volumes[template["metadata"]["name"]] = {"persistentVolumeClaim": {"claimName": claim}}
        return volumes

    def _volume_args(self, c: Container, fs_group: int | None, pod: str | None) -> list[str]:
        volumes = self._pod_volumes(c)
        args: list[str] = []
        for mount in c.spec.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            target = mount["mountPath"]
            read_only = bool(mount.get("readOnly"))
            if "emptyDir" in volume and pod is None:
                size = volume["emptyDir"].get("sizeLimit")
                options = ["rw", "exec", "nosuid", "nodev", "mode=1777"]
                if size:
                    options.append(f"size={quantity_bytes(size)}")
                args += ["--tmpfs", f"{target}:{','.join(options)}"]
                continue
            if "emptyDir" in volume:
                assert pod is not None
                local = self.pod_dir(pod, mount["name"], fs_group)
            elif "persistentVolumeClaim" in volume or "hostPath" in volume:
                local = self.claim_dir(volume)
                if fs_group is not None:  # what the kubelet does to a volume for the pod's fsGroup
                    os.chown(local, 0, fs_group)
                    local.chmod(0o2775)
                read_only = read_only or bool(volume.get("persistentVolumeClaim", {}).get("readOnly"))
            elif "configMap" in volume:
                local = self.config_map_dir(volume)
                read_only = True  # the kubelet mounts configMaps read-only
            else:
                raise NotImplementedError(f"{c.where}: volume {mount['name']} of an unsupported type")
            if mount.get("subPath"):
                local = local / mount["subPath"]
            args += ["--volume", f"{local}:{target}{':ro' if read_only else ''}"]
        return args

    def _env(self, c: Container, pod: str, ports: dict[int, int], extra: Mapping[str, str]) -> dict[str, str]:
        env: dict[str, str] = {}
        fields = {"metadata.name": pod, "metadata.namespace": self.namespace}
        for name, var in c.env().items():
            source = var.get("valueFrom", {})
            if "secretKeyRef" in source:
                value = secret_value(self.secrets or self.manifests, source["secretKeyRef"])
            elif "fieldRef" in source:
                value = fields[source["fieldRef"]["fieldPath"]]
            else:
                # $(NAME) names a variable defined above it, as the kubelet expands it.
                value = _REFERENCE.sub(lambda m: env.get(m[1], m[0]), str(var.get("value", "")))
            for cluster, local in self.hosts.items():
                value = value.replace(cluster, local)
            if value.isdigit() and int(value) in ports:  # a port the container listens on
                value = str(ports[int(value)])
            env[name] = value
        env.update(extra)
        return env

    def container(
        self,
        c: Container,
        name: str,
        *,
        image: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        ports: dict[int, int] | None = None,
        command: list[str] | None = None,
        args: list[str] | None = None,
        pod: str | None = None,
    ) -> ContainerRun:
        """The ``docker run`` of one rendered container (not started); ``command`` replaces its command
        and args, ``args`` only its args (run by the image's entrypoint when it has no command).
        Containers given the same ``pod`` share its emptyDirs, as the containers of one pod do."""
        sec = _security(c)
        ports = ports or {int(p["containerPort"]): free_port() for p in c.spec.get("ports", [])}
        # Kubernetes gives every pod its name as HOSTNAME; on the host network Docker would give the host's.
        env = self._env(c, name, ports, {"HOSTNAME": name, **(extra_env or {})})
        argv = ["run", "--detach", "--name", name, "--label", self.label, "--network", "host"]
        user = sec.get("runAsUser")
        if user is not None:
            argv += ["--user", f"{user}:{sec.get('runAsGroup', user)}"]
        fs_group = c.pod_spec.get("securityContext", {}).get("fsGroup")
        if fs_group is not None:
            argv += ["--group-add", str(fs_group)]
        if sec.get("readOnlyRootFilesystem"):
            argv.append("--read-only")
        if "ALL" in sec.get("capabilities", {}).get("drop", []):
            argv += ["--cap-drop", "ALL"]
        if sec.get("allowPrivilegeEscalation") is False:
            argv += ["--security-opt", "no-new-privileges"]
        limits = c.spec.get("resources", {}).get("limits", {})
        if "memory" in limits:
            argv += ["--memory", str(quantity_bytes(limits["memory"]))]
        if "cpu" in limits:
            argv += ["--cpus", quantity_cpus(limits["cpu"])]
        grace = int(c.pod_spec.get("terminationGracePeriodSeconds", 30))
        argv += ["--stop-timeout", str(grace)]
        argv += self._volume_args(c, fs_group, pod)
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
        args = c.spec.get("args", []) if args is None else args
        if command is None and "command" not in c.spec:
            # No command in the pod spec: the image's ENTRYPOINT runs with the args (or its CMD).
            argv += [image or c.spec["image"], *args]
        else:
            command = command or [*c.spec.get("command", []), *args]
            argv += ["--entrypoint", command[0], image or c.spec["image"], *command[1:]]
        return ContainerRun(self.engine, name, c, ports, env, argv)
