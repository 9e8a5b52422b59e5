"""The ``foreachBatch`` function of both connectors: classify, split, append to both tables exactly once.

What differs between the connectors (where records are classified, which Delta writer appends them) is the
:class:`~streamwatch_visits_writer.batch_paths.BatchPath` the job's connector picks once, at start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from streamwatch_common.object_store import ObjectStoreSettings
from streamwatch_common.spark.connector import PYTHON, Connector
from streamwatch_visits_writer import metrics
from streamwatch_visits_writer.batch_paths import batch_path
from streamwatch_visits_writer.delta_sink import DeltaBatchSink

if TYPE_CHECKING:
    from pathlib import Path

    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)


class VisitsBatchWriter:
    """Writes each micro-batch to the visits table and the dead-letter table.

    The Delta application id is bound once the query has started (:meth:`bind`): it contains the query id
    that Spark keeps in the checkpoint, so a restart from the checkpoint continues the same transaction
    sequence while a fresh checkpoint (batch ids from 0 again) does not collide with an old one.

    Usage::

        writer = VisitsBatchWriter(visits_path, dead_letter_path, ["event_time", "user_id", "page"])
        query = stream.writeStream.foreachBatch(writer).option("checkpointLocation", cp).start()
        writer.bind(str(query.id))
    """

    def __init__(
        self,
        visits_path: str,
        dead_letter_path: str,
        required_fields: Sequence[str],
        *,
        simulated_latency_seconds: float = 0.0,
        sleep: Callable[[float], object] = time.sleep,
        connector: Connector = PYTHON,
        spill_directory: Path | None = None,
        store: ObjectStoreSettings | None = None,
    ) -> None:
        self.visits_path = visits_path
        self.dead_letter_path = dead_letter_path
        self.required_fields = list(required_fields)
        # The object store's connection, for a table there (a local path needs none).
        self.store = store
        self.simulated_latency_seconds = simulated_latency_seconds
        self._sleep = sleep
        #: The connector's way of classifying and appending a batch; its Spark properties are the job's.
        self.path = batch_path(connector, self.required_fields, spill_directory)
        self.app_id = ""
        self._bound = threading.Event()
        self._visits: DeltaBatchSink | None = None
        self._dead: DeltaBatchSink | None = None

    def bind(self, query_id: str, prefix: str = "streamwatch-visits-writer") -> None:
        """Set the Delta application id from the streaming query's id (stable across restarts)."""
        app_id = self.app_id = f"{prefix}-{query_id}"
        self._visits = self._sink(self.visits_path, "visits", app_id)
        self._dead = self._sink(self.dead_letter_path, "visits_dead_letters", app_id)
        self._bound.set()
        logger.info("delta_app_id_bound", extra={"app_id": app_id})

    def _sink(self, path: str, name: str, app_id: str) -> DeltaBatchSink:
        return DeltaBatchSink(path, name, app_id, self.store.storage_options(path) if self.store else None)

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        try:
            self._write(batch_df, batch_id)
        except Exception:
            metrics.BATCH_FAILURES.inc()
            logger.exception("batch_failed", extra={"batch_id": batch_id})
            raise

    def _write(self, batch_df: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        # The first batch may start before start() has returned the query id to the main thread.
        if not self._bound.wait(60):
            raise RuntimeError("the Delta application id was never bound to the query id")
        assert self._visits is not None and self._dead is not None
        if self.simulated_latency_seconds > 0:
            self._sleep(self.simulated_latency_seconds)
        self.path.write(batch_df, batch_id, self._visits, self._dead, started)
