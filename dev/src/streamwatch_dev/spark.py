"""Where ``make deps`` put Spark's JVM connector jars, for running the jobs with the ``jvm`` connector."""

from __future__ import annotations

import json
from pathlib import Path

from streamwatch_dev.process import ComponentStartError, maven_libs

# pyspark's version (uv.lock); .ci/install-deps.sh resolves the connectors for it.
SPARK_VERSION = "4.2.0"
CONNECTORS = ("python", "jvm")
# The Hadoop client pyspark ships; hadoop-aws must match it.
HADOOP_VERSION = "3.5.0"


def spark_jars_dir() -> Path:
    """The connector jar directory (``SPARK_CONNECTOR_LIBS`` overrides); fails naming the fix if empty."""
    libs = maven_libs(f"spark-connectors-{SPARK_VERSION}", "SPARK_CONNECTOR_LIBS")
    if not any(libs.glob("spark-sql-kafka-*.jar")) or not any(libs.glob("delta-spark_*.jar")):
        raise ComponentStartError(
            f"Spark's JVM connector jars not found in {libs} (run make deps: .ci/install-deps.sh)"
        )
    return libs


def s3a_jars_dir() -> Path:
    """hadoop-aws and its AWS SDK modules (``S3A_LIBS`` overrides), for a checkpoint on object storage;
    fails naming the fix if empty."""
    libs = maven_libs(f"s3a-{HADOOP_VERSION}", "S3A_LIBS")
    if not any(libs.glob("hadoop-aws-*.jar")):
        raise ComponentStartError(f"hadoop-aws jars not found in {libs} (run make deps: .ci/install-deps.sh)")
    return libs


def newest_committed(checkpoint: Path | str, topic: str) -> dict[int, int]:
    """Next offset per partition of ``topic`` after the newest committed batch of a Spark checkpoint: the
    last line of ``offsets/N`` for the newest ``commits/N`` ({} before the first commit).

    Read here, apart from the observer's own checkpoint reader, so tests check that reader against it.
    """
    root = Path(checkpoint)
    if not (root / "commits").is_dir():
        return {}
    commits = [int(p.name) for p in (root / "commits").iterdir() if p.name.isdigit()]
    if not commits:
        return {}
    offsets = json.loads((root / "offsets" / str(max(commits))).read_text().splitlines()[-1])
    return {int(p): int(o) for p, o in offsets[topic].items()}
