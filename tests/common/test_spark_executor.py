"""Executors as pods, without a cluster: the job settings' Spark properties and refusals, and the executor
pods' command (``streamwatch-spark-executor``) as a real process starting Spark's real executor backend.
The cluster itself is in tests/e2e_kind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamwatch_common.settings import load_settings
from streamwatch_common.spark.executor import (
    EXECUTOR_BACKEND,
    MissingExecutorEnvironment,
    executor_command,
    spark_home,
)
from streamwatch_common.spark.kubernetes import DECOMMISSION_SCRIPT, EXECUTOR_FAILURES_WINDOW
from streamwatch_dev.services import VENV_BIN, service_env
from streamwatch_passthrough.settings import PassthroughSettings

WIRED = {
    "PASSTHROUGH_EXECUTOR_IMAGE": "streamwatch-passthrough:0.1.0",
    "PASSTHROUGH_KUBERNETES_NAMESPACE": "streamwatch",
    "PASSTHROUGH_DRIVER_SERVICE": "sw-streamwatch-passthrough-driver.streamwatch.svc",
    "PASSTHROUGH_DRIVER_POD_NAME": "sw-streamwatch-passthrough-5d9c-abcde",
}
EXECUTOR_ENV = {
    "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@127.0.0.1:9@",
    "SPARK_EXECUTOR_ID": "3",
    "SPARK_EXECUTOR_CORES": "1",
    "SPARK_APPLICATION_ID": "spark-application-1",
    "SPARK_EXECUTOR_POD_IP": "127.0.0.1",
    "SPARK_EXECUTOR_MEMORY": "512m",
    "SPARK_RESOURCE_PROFILE_ID": "0",
    "SPARK_EXECUTOR_POD_NAME": "passthrough-exec-3",
}


def test_executors_make_a_kubernetes_master_with_fixed_ports_and_dynamic_allocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    assert PassthroughSettings().kubernetes_conf() == {}, "no executors: nothing of Kubernetes"
    for name, value in {**WIRED, "PASSTHROUGH_EXECUTORS": "2", "PASSTHROUGH_EXECUTORS_MAX": "4"}.items():
        monkeypatch.setenv(name, value)
    settings = PassthroughSettings()
    assert settings.master == "k8s://https://kubernetes.default.svc"
    conf = settings.spark_session_conf()
    assert {k: conf[k] for k in ("spark.driver.port", "spark.driver.blockManager.port")} == {
        "spark.driver.port": "7078",
        "spark.driver.blockManager.port": "7079",
    }
    assert conf["spark.kubernetes.driver.pod.name"] == WIRED["PASSTHROUGH_DRIVER_POD_NAME"]
    assert conf["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"
    assert (conf["spark.dynamicAllocation.minExecutors"], conf["spark.dynamicAllocation.maxExecutors"]) == (
        "2",
        "4",
    )
    assert "spark.kubernetes.executor.request.cores" not in conf
    # Executor failures stop the job only when they come close together, not summed over weeks, and by
    # default not at all: a quota's refusals count as failures.
    assert conf["spark.executor.failuresValidityInterval"] == EXECUTOR_FAILURES_WINDOW
    assert int(conf["spark.executor.maxNumFailures"]) == 2**31 - 1
    # A deleted executor pod finishes its tasks first: Spark's preStop hook runs our command.
    assert conf["spark.decommission.enabled"] == "true"
    assert conf["spark.kubernetes.decommission.script"] == DECOMMISSION_SCRIPT
    assert (VENV_BIN / DECOMMISSION_SCRIPT).is_file()
    monkeypatch.setenv("PASSTHROUGH_EXECUTOR_MAX_FAILURES", "6")
    assert PassthroughSettings().spark_session_conf()["spark.executor.maxNumFailures"] == "6"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PASSTHROUGH_SPARK_MASTER": "k8s://https://kubernetes.default.svc"}, "PASSTHROUGH_SPARK_MASTER"),
        ({"PASSTHROUGH_EXECUTORS": "2"}, "PASSTHROUGH_EXECUTOR_IMAGE"),
        (
            {**WIRED, "PASSTHROUGH_EXECUTORS": "3", "PASSTHROUGH_EXECUTORS_MAX": "2"},
            "PASSTHROUGH_EXECUTORS_MAX",
        ),
    ],
)
def test_executor_settings_that_cannot_work_stop_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], variable: str
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings(PassthroughSettings)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and variable in err, err


def test_the_executor_command_is_spark_s_backend_with_the_pod_s_identity() -> None:
    env = {
        **EXECUTOR_ENV,
        "SPARK_JAVA_OPT_10": "-Dlast",
        "SPARK_JAVA_OPT_2": "-Dsecond",
        "SPARK_JAVA_OPT_0": "-Dfirst",
    }
    command = executor_command(env, Path("/spark"), "java")
    assert command[:4] == ["java", "-Dfirst", "-Dsecond", "-Dlast"], "Spark numbers the options to keep order"
    assert command[command.index("-cp") + 1].endswith("/spark/jars/*")
    assert command[command.index("--executor-id") + 1] == "3"
    assert command[command.index("--podName") + 1] == "passthrough-exec-3"
    with pytest.raises(MissingExecutorEnvironment, match="SPARK_DRIVER_URL"):
        executor_command({k: v for k, v in env.items() if k != "SPARK_DRIVER_URL"}, Path("/spark"))


def run_executor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(VENV_BIN / "streamwatch-spark-executor"), *args]
    return subprocess.run(
        command, env=service_env(**env), capture_output=True, text=True, timeout=120, check=False
    )


def test_the_executor_pod_command_runs_spark_s_backend_and_logs_json(tmp_path: Path) -> None:
    """Spark's executor backend really starts from pyspark's jars (no class is missing), finds no driver
    at the given URL and exits non-zero; every line of its output is a JSON log record of this process."""
    assert (spark_home() / "jars").is_dir()
    result = run_executor({**EXECUTOR_ENV, "SPARK_EXECUTOR_SERVICE": "passthrough-executor"}, "executor")
    assert result.returncode != 0
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert lines and all(line["service"] == "passthrough-executor" for line in lines), result.stdout[-2000:]
    assert lines[0]["event"] == "executor_starting" and lines[-1]["event"] == "executor_exited"
    jvm = [line for line in lines if line["event"] == "jvm_log"]
    assert any(
        "KubernetesExecutorBackend" in line.get("jvm_logger", "") + line.get("text", "") for line in jvm
    ), jvm
    assert "ClassNotFoundException" not in result.stdout


def test_an_executor_pod_not_started_by_spark_says_so_and_exits_2() -> None:
    result = run_executor({}, "executor")
    assert result.returncode == 2
    (line,) = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    assert line["event"] == "executor_start_failed" and "SPARK_DRIVER_URL" in line["error"]
    assert run_executor({}, "driver").returncode == 2


# Stands in for the executor JVM: its command line names Spark's backend; on the decommission signal it
# "finishes its running task" (a second) and exits 0, as the JVM does once its tasks are done.
FINISHING_EXECUTOR = """
import signal, sys, time
finishing = []
signal.signal(signal.SIGPWR, lambda *_: finishing.append(time.monotonic()))
print("ready", flush=True)
while not finishing:
    time.sleep(0.05)
time.sleep(1.0)
sys.exit(0)
"""


def test_the_decommission_hook_signals_the_executor_and_waits_for_its_tasks_to_finish() -> None:
    executor = subprocess.Popen(
        [sys.executable, "-c", FINISHING_EXECUTOR, EXECUTOR_BACKEND], stdout=subprocess.PIPE, text=True
    )
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert executor.stdout is not None and executor.stdout.readline() == "ready\n"
        started = time.monotonic()
        hook = subprocess.run(
            [str(VENV_BIN / DECOMMISSION_SCRIPT)], capture_output=True, text=True, timeout=60, check=False
        )
        waited = time.monotonic() - started
        assert hook.returncode == 0, hook.stdout + hook.stderr
        # It returned only once the executor had exited (a zombie until reaped here), after its task.
        assert waited >= 1.0
        assert executor.poll() == 0
        assert bystander.poll() is None, "a process that is no executor was signalled"
        events = [json.loads(line) for line in hook.stdout.splitlines() if line.strip()]
        (done,) = [e for e in events if e["event"] == "executor_decommissioned"]
        assert done["pids"] == [executor.pid]
        # With no executor left, it says so and returns at once.
        again = subprocess.run(
            [str(VENV_BIN / DECOMMISSION_SCRIPT)], capture_output=True, text=True, timeout=60, check=False
        )
        assert again.returncode == 0 and "executor_decommission_found_no_jvm" in again.stdout
    finally:
        for process in (executor, bystander):
            process.kill()
            process.wait()
