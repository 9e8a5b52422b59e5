"""``streamwatch-spark-class-archive PATH``: a class-data-sharing archive of the Spark driver's classes.

A Spark driver loads and verifies some twelve thousand classes from Spark's jars while its session starts
and its first query runs, and on a busy node that is seconds of CPU on every start (each pod start, each
restart after a crash). The JVM can instead map them, already parsed and verified, from an archive made by
an earlier run of the same Java with the same class path (JDK's dynamic CDS, ``-XX:ArchiveClassesAtExit``).
This command makes that archive: it runs a small local Spark job with the jobs' own driver Java options
(a streaming query with ``foreachBatch``, Arrow, a Python worker and a Python data source: what both
jobs' drivers load), and the JVM writes the classes it loaded when it exits. A job given the archive
(``<prefix>SPARK_CLASS_ARCHIVE``, :mod:`.job_settings`) maps it with ``-XX:SharedArchiveFile``.

The archive belongs to one Java build and one set of Spark jars: a JVM that finds it does not match
logs a ``[cds]`` warning and loads its classes from the jars as before (``-Xshare:auto``). It is written
to a temporary name and renamed, so a JVM never maps half an archive.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from streamwatch_common.logs import configure_logging

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.datasource import InputPartition

logger = logging.getLogger(__name__)

# The workload's batches; the first query of a driver loads most of what later ones use.
_BATCHES = 2
_WORKLOAD_TIMEOUT_SECONDS = 300.0


def use_options(path: str) -> str:
    """The driver Java options that map the archive at ``path`` (``-Xshare:auto``: one that does not
    match is left out with a warning)."""
    return f"-XX:SharedArchiveFile={path} -Xshare:auto"


def default_java_options() -> str:
    """The jobs' default driver Java options (``SPARK_DRIVER_JAVA_OPTIONS``): an archive's by default."""
    from streamwatch_common.spark.job_settings import SparkJobSettings

    default = SparkJobSettings.model_fields["spark_driver_java_options"].default
    assert isinstance(default, str)
    return default


def make_archive(target: Path, java_options: str | None = None) -> int:
    """Run the workload in a driver that archives its classes at exit; the archive's size in bytes.

    ``java_options`` are the driver's (default: the jobs' default ``SPARK_DRIVER_JAVA_OPTIONS``)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".class-archive-", dir=target.parent)) / "spark.jsa"
    options = java_options if java_options is not None else default_java_options()
    # Its "skipping a signed jar's class" warnings are what every such archive leaves out, not a fault.
    dump = f"{options} -XX:ArchiveClassesAtExit={partial} -Xlog:cds=error"
    try:
        with tempfile.TemporaryDirectory(prefix="class-archive-run-") as work:
            _run_workload(dump, Path(work))
        if not partial.is_file() or partial.stat().st_size == 0:
            raise RuntimeError(f"the driver JVM exited without writing {partial}")
        os.replace(partial, target)
        return target.stat().st_size
    finally:
        partial.unlink(missing_ok=True)
        partial.parent.rmdir()


def _run_workload(java_options: str, work: Path) -> None:
    from pyspark import SparkContext

    from streamwatch_common.spark.session import build_spark_session

    spark = build_spark_session(
        "spark-class-archive", "local[2]", extra_conf={"spark.driver.extraJavaOptions": java_options}
    )
    gateway = SparkContext._gateway
    try:
        _streaming_query(spark, work)
        _python_data_source(spark)
    finally:
        spark.stop()
        # The JVM writes the archive as it exits, which it does once its standard input closes.
        if gateway is not None:
            gateway.shutdown()
            process = gateway.proc
            process.stdin.close()
            process.wait(timeout=_WORKLOAD_TIMEOUT_SECONDS)
        SparkContext._gateway = None
        SparkContext._jvm = None


def _streaming_query(spark: SparkSession, work: Path) -> None:
    done: list[int] = []

    def each(batch: DataFrame, batch_id: int) -> None:
        if len(done) >= _BATCHES:
            return  # the query is being stopped: a batch still working would be interrupted
        batch.selectExpr("CAST(value AS STRING) AS value", "timestamp").toArrow()
        batch.mapInArrow(_same, batch.schema).count()
        done.append(batch_id)

    query = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", "1000")
        .load()
        .writeStream.foreachBatch(each)
        .trigger(processingTime="1 second")
        .option("checkpointLocation", str(work / "checkpoint"))
        .start()
    )
    deadline = time.monotonic() + _WORKLOAD_TIMEOUT_SECONDS
    try:
        while len(done) < _BATCHES:
            if not query.isActive:
                raise RuntimeError(f"the archive's streaming query stopped: {query.exception()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the archive's streaming query ran {len(done)} batches in time")
            time.sleep(0.2)
    finally:
        query.stop()


def _same(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield from batches


def _python_data_source(spark: SparkSession) -> None:
    from pyspark.sql.datasource import DataSource, DataSourceReader

    class _Reader(DataSourceReader):
        def read(self, partition: InputPartition) -> Iterator[tuple[int]]:
            yield from ((n,) for n in range(10))

    class _Source(DataSource):
        @classmethod
        def name(cls) -> str:
            return "streamwatch_class_archive"

        def schema(self) -> str:
            return "n int"

        def reader(self, schema: object) -> DataSourceReader:
            return _Reader()

    spark.dataSource.register(_Source)
    spark.read.format(_Source.name()).load().collect()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="streamwatch-spark-class-archive",
        description="Make the class-data-sharing archive that <prefix>SPARK_CLASS_ARCHIVE names.",
    )
    parser.add_argument("path", type=Path, help="where to write the archive (replaced if there)")
    parser.add_argument(
        "--java-options",
        default=None,
        help="the driver's Java options (default: the jobs' default SPARK_DRIVER_JAVA_OPTIONS)",
    )
    args = parser.parse_args(argv)
    configure_logging("spark-class-archive", os.environ.get("LOG_FORMAT", "console"))
    started = time.monotonic()
    logger.info("class_archive_started", extra={"path": str(args.path)})
    try:
        size = make_archive(args.path, args.java_options)
    except Exception:
        logger.exception("class_archive_failed", extra={"path": str(args.path)})
        sys.exit(1)
    logger.info(
        "class_archive_written",
        extra={
            "path": str(args.path),
            "mib": round(size / 2**20, 1),
            "seconds": round(time.monotonic() - started, 1),
        },
    )
