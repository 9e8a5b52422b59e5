"""How many of the executor pods a job asked for are running.

The job keeps running on the executors it has: Spark asks for the missing ones again by itself (a quota,
a full node). The count is logged when it changes (``executors_pending`` while short, ``executors_running``
once complete), exported as ``streamwatch_spark_executors{job, state}``, and is part of readiness: a job
with no executor at all runs no task, so it is not ready.

Usage::

    watch = ExecutorWatch(spark, requested=2, job="passthrough")
    watch.poll()      # 1: one executor registered (logged, exported)
    watch.ready()     # True: at least one
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import Gauge

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

EXECUTORS = Gauge(
    "streamwatch_spark_executors",
    "Executor pods of the job's Spark application: requested (at start) and running (registered).",
    ["job", "state"],
)


class ExecutorWatch:
    """The executors registered with the driver, against ``requested``."""

    def __init__(self, spark: SparkSession, requested: int, job: str) -> None:
        self._tracker = spark.sparkContext._jsc.sc().statusTracker()
        self.requested = requested
        self.job = job
        self.running: int | None = None
        EXECUTORS.labels(job=job, state="requested").set(requested)

    def count(self) -> int:
        """Executors registered now: Spark lists the driver among them."""
        return max(len(self._tracker.getExecutorInfos()) - 1, 0)

    def poll(self) -> int:
        """Count them, export the count, and log it when it changed."""
        running = self.count()
        EXECUTORS.labels(job=self.job, state="running").set(running)
        if running != self.running:
            fields = {"requested": self.requested, "running": running}
            if running < self.requested:
                logger.warning("executors_pending", extra=fields)
            else:
                logger.info("executors_running", extra=fields)
        self.running = running
        return running

    def ready(self) -> bool:
        """At least one executor: the job's tasks have somewhere to run."""
        return bool(self.running)
