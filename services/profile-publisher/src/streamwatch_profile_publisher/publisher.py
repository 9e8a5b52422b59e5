"""The publisher's domain operations: store a report, index its metadata, apply retention; and its
lifecycle: :meth:`Publisher.start` starts the indexer and the retention sweep, :meth:`Publisher.stop`
stops them.

The HTTP layer (:mod:`upload`, :mod:`browse`) only translates requests into these calls.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from streamwatch_profile_publisher.files import PendingUpload
from streamwatch_profile_publisher.indexer import MetadataIndexer
from streamwatch_profile_publisher.metadata import ReportRecord, UploadMetadata
from streamwatch_profile_publisher.metrics import (
    RETENTION_REMOVALS,
    STORAGE_ERRORS,
    UPLOADED_BYTES,
    UPLOADS,
)
from streamwatch_profile_publisher.retention import RetentionPolicy
from streamwatch_profile_publisher.settings import ProfilePublisherSettings
from streamwatch_profile_publisher.store import ReportStore

logger = logging.getLogger(__name__)


class Publisher:
    """Store + metadata indexer + retention, wired from the settings.

    Between :meth:`start` and :meth:`stop` a thread applies retention every ``sweep_seconds``: count
    and bytes are applied on every upload, but age also needs the clock to move.

    Usage::

        publisher = Publisher.from_settings(settings)
        publisher.start()
        record, created = publisher.publish(upload, metadata, charset="utf-8")
        publisher.stop()
    """

    def __init__(
        self,
        store: ReportStore,
        indexer: MetadataIndexer,
        retention: RetentionPolicy,
        public_base: str,
        sweep_seconds: float = 60.0,
    ) -> None:
        self.store = store
        self.indexer = indexer
        self.retention = retention
        self.public_base = public_base
        self._sweep_seconds = sweep_seconds
        self._stopping = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="retention-sweep", daemon=True)

    @classmethod
    def from_settings(cls, settings: ProfilePublisherSettings) -> Publisher:
        store = ReportStore(settings.store_dir).open()
        client_factory = settings.elasticsearch_client if settings.elasticsearch_url else None
        indexer = MetadataIndexer(
            settings.store_dir / "pending",
            client_factory,
            settings.elasticsearch_index,
            retry_seconds=settings.index_retry_seconds,
            replicas=settings.elasticsearch_index_replicas,
        )
        retention = RetentionPolicy(
            max_reports=settings.retention_max_reports,
            max_age_days=settings.retention_max_age_days,
            max_bytes=settings.retention_max_bytes,
        )
        return cls(store, indexer, retention, settings.public_base(), settings.retention_interval_seconds)

    def start(self) -> None:
        """Start indexing, apply retention once, then every ``sweep_seconds`` until :meth:`stop`."""
        self.indexer.start()
        self.enforce_retention()
        self._sweeper.start()

    def stop(self) -> None:
        """Stop the sweep, then the indexer; writes it has not done stay queued for the next start."""
        self._stopping.set()
        if self._sweeper.is_alive():
            self._sweeper.join()
        self.indexer.stop()

    def _sweep(self) -> None:
        while not self._stopping.wait(self._sweep_seconds):
            try:
                self.enforce_retention()
            except Exception:
                STORAGE_ERRORS.labels(operation="retention").inc()
                logger.exception("retention_sweep_failed")

    def publish(
        self, upload: PendingUpload, metadata: UploadMetadata, charset: str
    ) -> tuple[ReportRecord, bool]:
        """Store a received report, queue its metadata for indexing, then apply retention."""
        record, created = self.store.commit(upload, metadata, charset)
        UPLOADS.labels(result="created" if created else "replaced").inc()
        UPLOADED_BYTES.inc(record.bytes)
        logger.info(
            "report_stored",
            extra={
                "report_id": record.id,
                "result": "created" if created else "replaced",
                "job": record.job,
                "partitions": list(record.partitions),
                "window_end": record.window_end.isoformat(),
                "replica": record.replica,
                "bytes": record.bytes,
            },
        )
        try:
            self.indexer.put(record.id, record.search_document(self.public_base))
        except OSError as exc:
            # The report is stored and served; only its search entry is missing, which is no reason
            # to make the client retry an upload that succeeded.
            STORAGE_ERRORS.labels(operation="index_queue").inc()
            logger.error("index_queue_write_failed", extra={"report_id": record.id, "error": repr(exc)})
        self.enforce_retention()
        return record, created

    def enforce_retention(self, now: datetime | None = None) -> int:
        """Remove what the retention limits say; each removal is logged, counted and de-indexed."""
        removed = self.store.apply_retention(self.retention, now or datetime.now(UTC))
        for record, reason in removed:
            RETENTION_REMOVALS.labels(reason=reason).inc()
            logger.info(
                "report_removed",
                extra={
                    "report_id": record.id,
                    "reason": reason,
                    "job": record.job,
                    "bytes": record.bytes,
                    "uploaded_at": record.uploaded_at.isoformat(),
                },
            )
            try:
                self.indexer.delete(record.id)
            except OSError as exc:
                STORAGE_ERRORS.labels(operation="index_queue").inc()
                logger.error("index_queue_write_failed", extra={"report_id": record.id, "error": repr(exc)})
        return len(removed)
