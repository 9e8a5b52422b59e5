"""Exactly-once appends to a Delta table with delta-rs: one application transaction per micro-batch.

Every append commits ``Transaction(app_id, batch_id)`` atomically with the data. Before appending, the
table's latest transaction version for ``app_id`` is read: a batch id at or below it was already
committed (Spark replays the last batch after a crash), so the append is skipped.

On S3-compatible storage each commit is a conditional put (``If-None-Match``: delta-rs's default there),
so a second writer's commit of the same table version fails and is retried instead of overwriting it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

logger = logging.getLogger(__name__)


class DeltaBatchSink:
    """Appends one micro-batch at most once to the table at ``path``.

    Usage::

        sink = DeltaBatchSink("/data/delta/visits", "visits", app_id="visits-writer-<query id>")
        sink.append(arrow_table, batch_id=7)  # True: written; False: batch 7 was already committed

    ``storage_options``: the table's object-store connection (delta-rs's), None for a local path.
    """

    def __init__(
        self, path: str, name: str, app_id: str, storage_options: Mapping[str, str] | None = None
    ) -> None:
        self.path = path
        self.name = name
        self.app_id = app_id
        self._options = dict(storage_options) if storage_options else None

    def _table(self) -> DeltaTable:
        return DeltaTable(self.path, storage_options=self._options)

    def committed_version(self) -> int | None:
        """The newest batch id committed by ``app_id``, or None."""
        version = self._table().transaction_version(self.app_id)
        return None if version is None else int(version)

    def append(self, rows: pa.Table, batch_id: int) -> bool:
        """Append ``rows`` as batch ``batch_id``; False when that batch is already in the table."""
        table = self._table()
        committed = table.transaction_version(self.app_id)
        if committed is not None and committed >= batch_id:
            logger.info(
                "batch_already_committed",
                extra={"table": self.name, "batch_id": batch_id, "committed_batch_id": committed},
            )
            return False
        write_deltalake(
            table,
            rows,
            mode="append",
            commit_properties=CommitProperties(app_transactions=[Transaction(self.app_id, batch_id)]),
        )
        return True
