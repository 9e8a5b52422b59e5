"""``streamwatch-spark-executor``: the container command of a Spark executor pod, in a job's own image.

Spark's Kubernetes scheduler starts each executor pod from the job's pod template with the argument
``executor`` and the executor's identity in the environment (``SPARK_DRIVER_URL``, ``SPARK_EXECUTOR_ID``,
``SPARK_JAVA_OPT_<n>``...). Spark's own images read them with a shell entrypoint; the job images have
none, so this command does it: it starts the executor JVM with pyspark's jars and relays the JVM's
output as this process's JSON log records (:mod:`.jvm_output`), as the driver does, so
``kubectl logs -l spark-role=executor`` reads the same kind of lines. A stop signal is passed to the JVM;
the command exits with the JVM's code.

Usage (the pod template's container)::

    command: ["streamwatch-spark-executor"]   # Spark adds args: ["executor"]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from streamwatch_common.logs import configure_logging
from streamwatch_common.spark.jvm_output import relay_lines

EXECUTOR_BACKEND = "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"
# What Spark's scheduler puts in every executor pod's environment; the JVM cannot start without it.
REQUIRED = (
    "SPARK_DRIVER_URL",
    "SPARK_EXECUTOR_ID",
    "SPARK_EXECUTOR_CORES",
    "SPARK_APPLICATION_ID",
    "SPARK_EXECUTOR_POD_IP",
    "SPARK_EXECUTOR_MEMORY",
)
EXIT_USAGE = 2


class MissingExecutorEnvironment(Exception):
    """The pod lacks a variable Spark's scheduler sets: it was not started as an executor."""


def _java_options(env: Mapping[str, str]) -> list[str]:
    # SPARK_JAVA_OPT_0, _1, ... in order of their number: Spark numbers them to keep the order.
    numbered = [(name.removeprefix("SPARK_JAVA_OPT_"), value) for name, value in env.items()]
    return [value for number, value in sorted((int(n), v) for n, v in numbered if n.isdigit())]


def executor_command(env: Mapping[str, str], spark_home: Path, java: str = "java") -> list[str]:
    """The executor JVM's command line from the pod's environment; raises MissingExecutorEnvironment."""
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise MissingExecutorEnvironment(
            f"not started by Spark's Kubernetes scheduler: {', '.join(missing)} unset"
        )
    classpath = [entry for entry in env.get("SPARK_CLASSPATH", "").split(":") if entry]
    classpath.append(str(spark_home / "jars" / "*"))
    memory = env["SPARK_EXECUTOR_MEMORY"]
    return [
        java,
        *_java_options({k: v for k, v in env.items() if k.startswith("SPARK_JAVA_OPT_")}),
        f"-Xms{memory}",
        f"-Xmx{memory}",
        "-cp",
        ":".join(classpath),
        EXECUTOR_BACKEND,
        "--driver-url", env["SPARK_DRIVER_URL"],
        "--executor-id", env["SPARK_EXECUTOR_ID"],
        "--cores", env["SPARK_EXECUTOR_CORES"],
        "--app-id", env["SPARK_APPLICATION_ID"],
        "--hostname", env["SPARK_EXECUTOR_POD_IP"],
        "--resourceProfileId", env.get("SPARK_RESOURCE_PROFILE_ID", "0"),
        "--podName", env.get("SPARK_EXECUTOR_POD_NAME", env.get("HOSTNAME", "")),
    ]  # fmt: skip


def spark_home() -> Path:
    """The Spark the job runs: pyspark's own directory (its ``jars/``)."""
    import pyspark

    return Path(pyspark.__file__).parent


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    configure_logging(os.environ.get("SPARK_EXECUTOR_SERVICE", "spark-executor"))
    import logging

    logger = logging.getLogger(__name__)
    if args != ["executor"]:
        print("usage: streamwatch-spark-executor executor (Spark's scheduler adds it)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    try:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else "java"
        command = executor_command(os.environ, spark_home(), java)
    except MissingExecutorEnvironment as exc:
        logger.critical("executor_start_failed", extra={"error": str(exc)})
        raise SystemExit(EXIT_USAGE) from exc
    logger.info(
        "executor_starting",
        extra={"executor_id": os.environ["SPARK_EXECUTOR_ID"], "app_id": os.environ["SPARK_APPLICATION_ID"]},
    )
    jvm = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def forward(signum: int, _frame: FrameType | None) -> None:
        jvm.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    assert jvm.stdout is not None
    relay_lines(iter(jvm.stdout.readline, b""))
    code = jvm.wait()
    logger.info("executor_exited", extra={"exit_code": code})
    raise SystemExit(code)
