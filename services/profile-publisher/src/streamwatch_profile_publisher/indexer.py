"""Report metadata in Elasticsearch, written in the background from a queue persisted on the volume.

An upload never waits for Elasticsearch: it drops a small JSON file into ``<store>/pending/`` and wakes
the indexer thread. The thread writes the files in order and deletes each one only after Elasticsearch
accepted it, so an outage or a restart delays metadata but never loses it. Document ids are report ids,
which makes every write idempotent (a replayed file overwrites instead of duplicating).

Usage::

    indexer = MetadataIndexer(
        store_dir / "pending", settings.elasticsearch_client, "visits_profiles", replicas=0
    )
    indexer.start()
    indexer.put(record.id, record.search_document(public_base))
    ...
    indexer.stop()
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamwatch_common.backoff import Backoff
from streamwatch_common.search import index_replicas_settings
from streamwatch_profile_publisher.metrics import INDEX_FAILURES, INDEX_PENDING, INDEX_WRITES

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

logger = logging.getLogger(__name__)

_MAX_BACKOFF_SECONDS = 300.0

MAPPINGS: dict[str, Any] = {
    "properties": {
        "@timestamp": {"type": "date"},
        "job": {"type": "keyword"},
        "partitions": {"type": "integer"},
        "window_start": {"type": "date"},
        "window_end": {"type": "date"},
        "rows": {"type": "long"},
        "replica": {"type": "keyword"},
        "report_id": {"type": "keyword"},
        "report_url": {"type": "keyword"},
        "bytes": {"type": "long"},
        "uploaded_at": {"type": "date"},
    }
}


class MetadataIndexer:
    """Background writer of report metadata with a durable queue of pending operations."""

    def __init__(
        self,
        pending_dir: Path,
        client_factory: Callable[[], Elasticsearch] | None,
        index: str,
        retry_seconds: float = 5.0,
        *,
        replicas: int | None = None,
    ) -> None:
        self.pending_dir = pending_dir
        self.index = index
        # number_of_replicas of the index (None: the cluster's default).
        self.replicas = replicas
        self._client_factory = client_factory
        self._client: Elasticsearch | None = None
        self._index_ready = False
        self._retry_seconds = retry_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._seq = itertools.count()
        self._thread = threading.Thread(target=self._run, name="metadata-indexer", daemon=True)

    @property
    def enabled(self) -> bool:
        return self._client_factory is not None

    def start(self) -> MetadataIndexer:
        if not self.enabled:
            logger.info("metadata_indexing_disabled")
            return self
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        INDEX_PENDING.set(len(self._pending()))
        self._thread.start()
        logger.info("metadata_indexer_started", extra={"index": self.index, "pending": len(self._pending())})
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the write in progress; what is still pending stays on disk for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._client is not None:
            self._client.close()

    # queue ---------------------------------------------------------------------------------------------
    def put(self, report_id: str, document: dict[str, Any]) -> None:
        """Queue an index (create or overwrite) of a report's metadata."""
        self._enqueue({"op": "index", "id": report_id, "document": document})

    def delete(self, report_id: str) -> None:
        """Queue the removal of a report's metadata (its report is gone)."""
        self._enqueue({"op": "delete", "id": report_id})

    def _enqueue(self, operation: dict[str, Any]) -> None:
        if not self.enabled:
            return
        # Nanoseconds then a counter: file names sort in the order operations were queued.
        name = f"{time.time_ns():020d}-{next(self._seq):08d}-{operation['op']}-{operation['id']}.json"
        tmp = self.pending_dir / f".{name}.tmp"
        with tmp.open("x", encoding="utf-8") as handle:
            json.dump(operation, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.pending_dir / name)
        INDEX_PENDING.inc()
        self._wake.set()

    def _pending(self) -> list[Path]:
        return sorted(p for p in self.pending_dir.glob("*.json") if not p.name.startswith("."))

    def pending_count(self) -> int:
        return len(self._pending()) if self.enabled else 0

    # worker --------------------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = Backoff(first=self._retry_seconds, maximum=_MAX_BACKOFF_SECONDS)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                drained = self._drain()
            except Exception:
                # The queue directory itself failed (volume trouble): keep the thread alive and retry.
                INDEX_FAILURES.inc()
                logger.exception("index_queue_failed", extra={"pending_dir": str(self.pending_dir)})
                drained = False
            if drained:
                backoff.reset()
                self._wake.wait()
            else:
                self._wake.wait(backoff.next_delay())

    def _drain(self) -> bool:
        """Write every pending operation in order; False at the first failure (retried later)."""
        for path in self._pending():
            if self._stop.is_set():
                return True
            try:
                operation = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                INDEX_FAILURES.inc()
                logger.error("index_operation_unreadable", extra={"file": path.name, "error": repr(exc)})
                # Keep it out of the queue's way but on disk, for a human to look at.
                path.rename(path.with_suffix(".bad"))
                INDEX_PENDING.dec()
                continue
            try:
                self._apply(operation)
            except Exception as exc:  # noqa: BLE001 - any client/transport error: retry with back-off
                INDEX_FAILURES.inc()
                logger.warning(
                    "index_write_failed",
                    extra={
                        "op": operation.get("op"),
                        "report_id": operation.get("id"),
                        "index": self.index,
                        "pending": len(self._pending()),
                        "error": repr(exc)[:500],
                    },
                )
                return False
            path.unlink(missing_ok=True)
            INDEX_PENDING.dec()
            INDEX_WRITES.labels(op=operation["op"]).inc()
            logger.info(
                "report_metadata_written", extra={"op": operation["op"], "report_id": operation["id"]}
            )
        return True

    def _apply(self, operation: dict[str, Any]) -> None:
        from elasticsearch import NotFoundError

        client = self._connect()
        if operation["op"] == "index":
            client.index(index=self.index, id=operation["id"], document=operation["document"])
        else:
            try:
                client.delete(index=self.index, id=operation["id"])
            except NotFoundError:
                logger.info("report_metadata_already_absent", extra={"report_id": operation["id"]})

    def _connect(self) -> Elasticsearch:
        from elasticsearch import BadRequestError

        assert self._client_factory is not None
        if self._client is None:
            self._client = self._client_factory()
        if not self._index_ready:
            settings = index_replicas_settings(self.replicas)
            created = False
            if not self._client.indices.exists(index=self.index):
                try:
                    self._client.indices.create(
                        index=self.index,
                        mappings=MAPPINGS,
                        settings={"index": settings} if settings else None,
                    )
                    created = True
                    logger.info(
                        "search_index_created", extra={"index": self.index, "replicas": self.replicas}
                    )
                except BadRequestError as exc:
                    # Another replica created it between our check and our create.
                    if exc.error != "resource_already_exists_exception":
                        raise
            if settings and not created:
                # An index made before (say with the default 1 replica, yellow forever on one node) gets
                # the count too: number_of_replicas is a dynamic setting.
                self._client.indices.put_settings(index=self.index, settings={"index": settings})
            self._index_ready = True
        return self._client
