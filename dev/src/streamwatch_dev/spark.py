"""Where ``make deps`` put Spark's JVM connector jars, for running the jobs with the ``jvm`` connector."""

from __future__ import annotations

import os
from pathlib import Path

from streamwatch_dev.process import ComponentStartError

# pyspark's version (uv.lock); .ci/install-deps.sh resolves the connectors for it.
SPARK_VERSION = "4.2.0"
CONNECTORS = ("python", "jvm")


def spark_jars_dir() -> Path:
    """The connector jar directory (``SPARK_CONNECTOR_LIBS`` overrides); fails naming the fix if empty."""
    if "SPARK_CONNECTOR_LIBS" in os.environ:
        libs = Path(os.environ["SPARK_CONNECTOR_LIBS"])
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        libs = cache / "streamwatch" / f"spark-connectors-{SPARK_VERSION}" / "libs"
    if not any(libs.glob("spark-sql-kafka-*.jar")) or not any(libs.glob("delta-spark_*.jar")):
        raise ComponentStartError(
            f"Spark's JVM connector jars not found in {libs} (run make deps: .ci/install-deps.sh)"
        )
    return libs
