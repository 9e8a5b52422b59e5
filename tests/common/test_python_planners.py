"""A Spark whose worker registry cannot be reached keeps its planning daemons: logged and counted, never
raised into the job's first batch. (Stopping them on this Spark is shown by the visits writer's stream
test, which reads ``planner_daemons_stopped``.)"""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from streamwatch_common.spark.python_planners import stop_planner_daemons


def _spark_without_registry() -> SimpleNamespace:
    def no_env() -> None:
        raise RuntimeError("py4j: SparkEnv has no field pythonWorkers")

    spark_pkg = SimpleNamespace(SparkEnv=SimpleNamespace(get=no_env))
    jvm = SimpleNamespace(org=SimpleNamespace(apache=SimpleNamespace(spark=spark_pkg)))
    return SimpleNamespace(sparkContext=SimpleNamespace(_jvm=jvm))


def test_daemons_that_cannot_be_reached_are_kept_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    job = f"job_{uuid.uuid4().hex[:6]}"
    with caplog.at_level(logging.WARNING, logger="streamwatch_common.spark.python_planners"):
        stopped = stop_planner_daemons(_spark_without_registry(), job)  # type: ignore[arg-type]

    assert stopped == []
    assert REGISTRY.get_sample_value("streamwatch_planner_daemons_kept_total", {"job": job}) == 1
    (line,) = [r for r in caplog.records if r.getMessage() == "planner_daemons_kept"]
    assert line.__dict__["job"] == job and "pythonWorkers" in line.__dict__["error"]
