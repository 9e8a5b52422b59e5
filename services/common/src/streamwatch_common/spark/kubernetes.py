"""Executors as pods: a streaming job's settings and Spark properties for Spark's Kubernetes scheduler.

The job stays a driver in client mode inside its Deployment's pod (its SIGTERM gate, probes and logs are
unchanged) and asks the API server for executor pods made from the chart's pod template, in the job's
own image. They reach the driver through a headless Service on fixed ports; each is owned by the driver
pod, so deleting the driver removes them. Mixed into :class:`~.job_settings.SparkJobSettings`, so every
field takes the job's prefix (``PASSTHROUGH_EXECUTORS``, ``VISITS_WRITER_EXECUTOR_MEMORY``...).

Usage::

    settings.master                # "k8s://https://kubernetes.default.svc" once executors are asked for
    settings.kubernetes_conf()     # the Spark properties that make it so (empty otherwise)
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings

from streamwatch_common.settings import refuse, service_config

# The API server as every pod of the cluster reaches it.
KUBERNETES_MASTER = "k8s://https://kubernetes.default.svc"
# Fixed, so the driver's Service and the NetworkPolicies can name them (Spark picks random ones otherwise).
DRIVER_PORT = 7078
BLOCK_MANAGER_PORT = 7079
# The executor container's name in the pod template (the chart's), which Spark fills in.
EXECUTOR_CONTAINER = "executor"
# The executor pods' preStop hook (streamwatch_common.spark.decommission): a deleted executor finishes its
# running tasks before it goes, instead of leaving them to run again elsewhere.
DECOMMISSION_SCRIPT = "streamwatch-spark-decommission"
# Spark stops the application once `spark.executor.maxNumFailures` executors have failed, counted over its
# whole life by default: a streaming job runs for weeks, so only recent failures count (a crash loop
# still stops it; node drains spread over weeks do not add up).
EXECUTOR_FAILURES_WINDOW = "1h"
# What "never" is to Spark's integer setting: Spark counts a pod the API server refused (a quota) as a
# failed executor and retries every second, so its own default would stop the job within seconds.
NEVER = 2**31 - 1


class ExecutorSettings(BaseSettings):
    """Executor pods of a job's Spark application; none by default (``spark_master``, in the pod)."""

    model_config = service_config("")

    spark_master: str = Field(
        default="local[*]",
        description="Spark master URL while the job runs in its own pod (`executors` 0). A `k8s://` master "
        "is not set here: `executors` sets it, with the Service, pod template and permissions it needs.",
    )
    executors: int = Field(
        default=0,
        ge=0,
        description="Executor pods (Spark's Kubernetes scheduler, client mode from the job's pod); `0`: "
        "none, the job runs in its pod's JVM (`spark_master`). With executors, the chart's ServiceAccount, "
        "Role, driver Service and pod template are needed (`<component>.spark.executors`).",
    )
    executors_max: int = Field(
        default=0,
        ge=0,
        description="Above `executors`: dynamic allocation between `executors` (at least 1) and this many, "
        "with shuffle tracking (no external shuffle service); `0`: a fixed count.",
    )
    executor_cores: int = Field(
        default=1, ge=1, description="Task slots per executor (`spark.executor.cores`)."
    )
    executor_memory: str = Field(
        default="512m",
        pattern=r"^[0-9]+[kmgtKMGT]?$",
        description="Executor JVM heap (`spark.executor.memory`); Spark adds its overhead to the pod's "
        "memory request.",
    )
    executor_max_failures: int | None = Field(
        default=None,
        ge=1,
        description="Executor failures within an hour that stop the job (`spark.executor.maxNumFailures`; "
        "a pod the namespace's quota refuses counts as one, once a second); unset: none does, the job "
        "waits for its executors, logs them pending and is not ready without any.",
    )
    executor_cpu_request: str | None = Field(
        default=None,
        description="The executor pods' CPU request (`spark.kubernetes.executor.request.cores`, e.g. "
        "`250m`); unset: `executor_cores`.",
    )
    executor_image: str | None = Field(
        default=None, description="Image of the executor pods: the job's own (the chart sets it)."
    )
    executor_pod_template: str | None = Field(
        default=None,
        description="Pod template file of the executors (security context, node selector, tolerations, "
        "environment, volumes: the chart mounts its own).",
    )
    kubernetes_namespace: str | None = Field(
        default=None, description="Namespace of the driver pod and its executors (the chart sets it)."
    )
    driver_service: str | None = Field(
        default=None,
        description="DNS name of the driver's headless Service, which executors connect to "
        "(`spark.driver.host`; the chart makes it).",
    )
    driver_pod_name: str | None = Field(
        default=None,
        description="The driver's pod name, owner of its executors so that deleting it removes them (the "
        "chart sets it from the downward API).",
    )

    @property
    def master(self) -> str:
        """The Spark master the job runs on: Kubernetes with executors, else :attr:`spark_master`."""
        return KUBERNETES_MASTER if self.executors else self.spark_master

    @model_validator(mode="after")
    def _executors_are_wired(self) -> Self:
        if self.spark_master.startswith("k8s://"):
            error = PydanticCustomError(
                "k8s_master",
                "a k8s:// master is set by `executors`, with the Service, pod template and permissions it "
                "needs, not here",
            )
            refuse(self, error, "spark_master", self.spark_master)
        if self.executors:
            for name in ("executor_image", "kubernetes_namespace", "driver_service", "driver_pod_name"):
                if not getattr(self, name):
                    error = PydanticCustomError(
                        "executor_wiring", "executor pods need it (the chart sets it with `executors`)"
                    )
                    refuse(self, error, name, None)
        if self.executors_max and self.executors_max < max(self.executors, 1):
            error = PydanticCustomError(
                "executors_max", "must be at least `executors` (and 1), or 0 for a fixed count"
            )
            refuse(self, error, "executors_max", self.executors_max)
        return self

    def kubernetes_conf(self) -> dict[str, str]:
        """Spark properties of executor pods (none without executors)."""
        if not self.executors:
            return {}
        conf = {
            "spark.submit.deployMode": "client",
            "spark.kubernetes.namespace": str(self.kubernetes_namespace),
            "spark.kubernetes.container.image": str(self.executor_image),
            "spark.kubernetes.driver.pod.name": str(self.driver_pod_name),
            "spark.driver.host": str(self.driver_service),
            "spark.driver.bindAddress": "0.0.0.0",
            "spark.driver.port": str(DRIVER_PORT),
            "spark.driver.blockManager.port": str(BLOCK_MANAGER_PORT),
            "spark.blockManager.port": str(BLOCK_MANAGER_PORT),
            "spark.executor.instances": str(self.executors),
            "spark.executor.cores": str(self.executor_cores),
            "spark.executor.memory": self.executor_memory,
            "spark.kubernetes.executor.podTemplateContainerName": EXECUTOR_CONTAINER,
            "spark.executor.failuresValidityInterval": EXECUTOR_FAILURES_WINDOW,
            "spark.executor.maxNumFailures": str(self.executor_max_failures or NEVER),
            "spark.decommission.enabled": "true",
            "spark.kubernetes.decommission.script": DECOMMISSION_SCRIPT,
        }
        if self.executor_pod_template:
            conf["spark.kubernetes.executor.podTemplateFile"] = self.executor_pod_template
        if self.executor_cpu_request:
            conf["spark.kubernetes.executor.request.cores"] = self.executor_cpu_request
        if self.executors_max:
            conf |= {
                "spark.dynamicAllocation.enabled": "true",
                "spark.dynamicAllocation.shuffleTracking.enabled": "true",
                "spark.dynamicAllocation.minExecutors": str(max(self.executors, 1)),
                "spark.dynamicAllocation.initialExecutors": str(self.executors),
                "spark.dynamicAllocation.maxExecutors": str(self.executors_max),
            }
        return conf
