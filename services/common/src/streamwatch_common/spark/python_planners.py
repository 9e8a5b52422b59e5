"""Stop the Python planning helpers Spark keeps idle once a query with a Python data source runs.

Spark resolves a Python data source on the driver in short-lived planning calls, each in a worker of its
own ``pyspark.daemon`` per module: ``lookup_data_sources`` (session start), ``create_data_source`` and
``plan_data_source_read`` (query start; a streaming query plans its reads once, its micro-batches are
planned by the long-lived ``python_streaming_source_runner``). The daemons stay for the whole session and
Spark has no setting to end them: ``spark.python.use.daemon=false`` would also fork a new interpreter per
Spark task, ``spark.python.worker.idleTimeoutSeconds`` / ``killOnIdleTimeout`` watch a worker inside a task,
``spark.python.factory.idleWorkerMaxPoolSize`` bounds idle workers (its minimum is 1) but not the daemon,
and an idle worker is only ended by Spark after a minute without activity. Together they held ~240 MiB
PSS beside a running passthrough.

:func:`stop_planner_daemons` stops those factories (``PythonWorkerFactory.stop()``, what Spark does at
session end) once the query has planned its reads (by the first ``foreachBatch`` call). A planning call
that comes later (a new query) starts its daemon again, at its usual cost. Spark's worker registry is
private: read through Java reflection, and if this Spark has none, nothing is stopped (logged as
``planner_daemons_kept`` and counted in ``streamwatch_planner_daemons_kept_total{job}``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import Counter

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

PLANNER_DAEMONS_KEPT = Counter(
    "streamwatch_planner_daemons_kept_total",
    "Spark's idle Python planning daemons left running because they could not be reached to stop them.",
    ["job"],
)

#: Worker modules Spark runs only to plan (look up, create, plan the read of) a Python data source.
PLANNER_MODULES = frozenset(
    {
        "pyspark.sql.worker.lookup_data_sources",
        "pyspark.sql.worker.create_data_source",
        "pyspark.sql.worker.plan_data_source_read",
    }
)


def stop_planner_daemons(spark: SparkSession, job: str) -> list[str]:
    """Stop the idle planning daemons of :data:`PLANNER_MODULES`; the modules whose daemon was stopped.

    Call it between micro-batches, once the query has started: a planning call running meanwhile would
    lose its worker.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    try:
        env = jvm.org.apache.spark.SparkEnv.get()
        field = env.getClass().getDeclaredField("pythonWorkers")
        field.setAccessible(True)
        factories = field.get(env)
        keys = factories.keys().iterator()
        stopped = []
        while keys.hasNext():
            key = keys.next()
            module = str(key.workerModule())
            if module in PLANNER_MODULES:
                factories.apply(key).stop()
                stopped.append(module)
    except Exception as exc:  # noqa: BLE001 - a Spark without this registry: keep the daemons, say so
        PLANNER_DAEMONS_KEPT.labels(job=job).inc()
        logger.warning("planner_daemons_kept", extra={"job": job, "error": str(exc)})
        return []
    logger.info("planner_daemons_stopped", extra={"modules": sorted(stopped)})
    return sorted(stopped)
