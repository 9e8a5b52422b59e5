"""The Spark JVM's console output, made into the service's own log records.

Spark's driver JVM (and the Python workers it starts) write plain-text log4j lines and JVM warnings to
the console they inherit. In a pod that console is the container's log, where every line is expected
to be one JSON object. So the jobs start the JVM with its stdout and stderr on a pipe, and a thread
turns each line into a log record of this process: a log4j line keeps its level and logger, a line that
already is a JSON object (a worker's structured log) passes through unchanged, anything else is kept
with the level of the line before it (a stack trace stays with its error).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark import SparkConf

logger = logging.getLogger("spark.jvm")

# Spark's default log4j2 pattern: "26/11/28 20:44:16 WARN ProcessingTimeExecutor: Current batch ..."
_LOG4J_LINE = re.compile(
    r"^\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) ([^:\s]+): ?(.*)$"
)
_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
}


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def relay_lines(lines: Iterable[bytes]) -> None:
    """Log every line of the JVM's output; returns when the output ends (the JVM exited)."""
    level = logging.INFO
    for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line.strip():
            continue
        if _json_object(line) is not None:
            # Already structured (a Python worker logging with this project's formatter): keep it whole.
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            continue
        match = _LOG4J_LINE.match(line)
        if match:
            level = _LEVELS[match.group(1)]
            logger.log(level, "jvm_log", extra={"jvm_logger": match.group(2), "text": match.group(3)})
        else:
            logger.log(level, "jvm_log", extra={"text": line})


def start_relay(stream: IO[bytes]) -> threading.Thread:
    thread = threading.Thread(target=relay_lines, args=(iter(stream.readline, b""),), daemon=True)
    thread.name = "spark-jvm-output"
    thread.start()
    return thread


def launch_logged_gateway(conf: SparkConf) -> None:
    """Start the JVM for the process's first SparkContext with its output relayed as log records.

    Does nothing when a gateway is already up (a second session in one process reuses the JVM).
    """
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return
    gateway = launch_gateway(  # type: ignore[no-untyped-call]
        conf, popen_kwargs={"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    )
    start_relay(gateway.proc.stdout)
    SparkContext._ensure_initialized(gateway=gateway)
