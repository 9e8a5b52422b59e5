"""``streamwatch-spark-decommission``: the executor pods' preStop hook, so that a deleted executor pod
(``kubectl delete pod``, a node drain, a scale-down) finishes its running tasks before it goes.

Without it the kubelet's SIGTERM stops the executor JVM mid-task: Spark runs the task again elsewhere, and
a task that had written part of its output (the passthrough's in-source copy) writes it twice. With
``spark.decommission.enabled`` (set with executors, :mod:`.kubernetes`) Spark gives every executor pod a
preStop hook running this command (``spark.kubernetes.decommission.script``). It sends the executor JVM in
the container Spark's decommission signal (SIGPWR): the JVM tells the driver, which schedules no new task
on it, and exits with 0 once its running tasks are done. The command waits for that exit; the kubelet sends
SIGTERM only after the hook returns, and ends the hook at the pod's termination grace period, so a task
longer than that is cut short as before (and run again: at-least-once).

Spark's own images ship a shell script for this (``/opt/decom.sh``); the job images have no shell tools.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from streamwatch_common.logs import configure_logging
from streamwatch_common.spark.executor import EXECUTOR_BACKEND

logger = logging.getLogger(__name__)

#: Spark's default decommission signal (``spark.executor.decommission.signal``).
DECOMMISSION_SIGNAL = signal.SIGPWR
POLL_SECONDS = 0.2
PROC = Path("/proc")


def executor_jvms() -> Iterator[int]:
    """The process ids whose command line runs Spark's executor backend."""
    needle = EXECUTOR_BACKEND.encode()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone since the listing, or not ours to read: not an executor of this container
        if needle in arguments:
            yield int(entry.name)


def _alive(pid: int) -> bool:
    try:
        status = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False  # reaped
    # A zombie has exited: its parent (the executor command) has not reaped it yet.
    return status.rpartition(")")[2].split()[0] != "Z"


def decommission() -> list[int]:
    """Signal every executor JVM found and wait until each has exited; the pids signalled."""
    pids = list(executor_jvms())
    for pid in pids:
        try:
            os.kill(pid, DECOMMISSION_SIGNAL)
        except ProcessLookupError:
            continue
    while any(_alive(pid) for pid in pids):
        time.sleep(POLL_SECONDS)
    return pids


def main() -> None:
    configure_logging(os.environ.get("SPARK_EXECUTOR_SERVICE", "spark-executor"))
    started = time.monotonic()
    logger.info("executor_decommissioning")
    pids = decommission()
    if not pids:
        logger.warning("executor_decommission_found_no_jvm")
    logger.info(
        "executor_decommissioned",
        extra={"pids": pids, "seconds": round(time.monotonic() - started, 3)},
    )
    sys.exit(0)
