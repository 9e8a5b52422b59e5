"""One local SparkSession for every Spark I/O test (session start costs ~6 s and ~700 MB)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from streamwatch_common.spark.session import build_spark_session


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = build_spark_session("streamwatch-tests-spark-io", "local[2]")
    yield session
    session.stop()
