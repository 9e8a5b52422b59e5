"""The report store: HTML files and JSON metadata sidecars on one volume, written atomically.

Layout under the store directory::

    reports/<id>.html   the report, exactly the uploaded bytes
    reports/<id>.json   its metadata (:class:`ReportRecord`); a report exists when both exist
    reports/.tmp-*      uploads in progress (same file system, so the final rename is atomic)

The sidecars are the index: they are read once at start (:mod:`recovery`), then kept in memory
behind one lock; :mod:`files` writes and removes the files.

Usage::

    store = ReportStore(Path("/data/reports")).open()
    upload = store.new_upload()
    upload.write(b"<html>...</html>")
    record, created = store.commit(upload, metadata, charset="utf-8")
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

from streamwatch_common.errors import StreamwatchError
from streamwatch_profile_publisher.files import PendingUpload, fsync_dir, remove_file, write_json
from streamwatch_profile_publisher.metadata import REPORT_ID, ReportRecord, UploadMetadata, report_id_for
from streamwatch_profile_publisher.metrics import REPORTS_KEPT, STORAGE_ERRORS, STORED_BYTES
from streamwatch_profile_publisher.recovery import load_records
from streamwatch_profile_publisher.retention import RemovalReason, RetentionPolicy

logger = logging.getLogger(__name__)


class StoreError(StreamwatchError):
    """The store directory cannot be used (missing, not writable, damaged beyond repair)."""


class ReportStore:
    """Reports and their metadata on disk, with an in-memory index guarded by one lock."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.reports_dir = root / "reports"
        self._lock = threading.Lock()
        self._records: dict[str, ReportRecord] = {}
        self._bytes = 0
        self._real_dir = self.reports_dir

    # start -------------------------------------------------------------------------------------------
    def open(self) -> ReportStore:
        """Create the directories, clear what an interrupted run left behind, load the index."""
        try:
            self.reports_dir.mkdir(parents=True, exist_ok=True)
            self._real_dir = self.reports_dir.resolve(strict=True)
            with self._lock:
                self._load()
        except OSError as exc:
            STORAGE_ERRORS.labels(operation="open").inc()
            raise StoreError(f"report store {self.root} unusable: {exc}") from exc
        logger.info(
            "store_loaded",
            extra={"path": str(self.root), "reports": len(self._records), "bytes": self._bytes},
        )
        return self

    def _load(self) -> None:
        self._records = load_records(self.reports_dir)
        self._bytes = sum(record.bytes for record in self._records.values())
        self._publish_gauges()

    # writes ------------------------------------------------------------------------------------------
    def new_upload(self) -> PendingUpload:
        """A temporary file in the store directory for a report being received."""
        return PendingUpload(self.reports_dir)

    def commit(
        self, upload: PendingUpload, metadata: UploadMetadata, charset: str
    ) -> tuple[ReportRecord, bool]:
        """Make a received report visible under its server-generated id; True if it is new.

        The same idempotency key replaces the earlier report under the same id.
        """
        upload.finish()
        report_id = report_id_for(metadata.key)
        now = datetime.now(UTC)
        with self._lock:
            previous = self._records.get(report_id)
            record = ReportRecord(
                **metadata.subject(),
                id=report_id,
                bytes=upload.size,
                sha256=upload.sha256,
                charset=charset,
                uploaded_at=now,
                first_uploaded_at=previous.first_uploaded_at if previous else now,
            )
            try:
                os.replace(upload.path, self.reports_dir / f"{report_id}.html")
                write_json(self.reports_dir / f"{report_id}.json", record.to_json())
                fsync_dir(self.reports_dir)
            except OSError:
                STORAGE_ERRORS.labels(operation="commit").inc()
                upload.discard()
                raise
            self._records[report_id] = record
            self._bytes += record.bytes - (previous.bytes if previous else 0)
            self._publish_gauges()
        return record, previous is None

    def apply_retention(
        self, policy: RetentionPolicy, now: datetime | None = None
    ) -> list[tuple[ReportRecord, RemovalReason]]:
        """Remove what the policy says, oldest first; returns what was removed and why."""
        if policy.unlimited:
            return []
        removed = []
        with self._lock:
            for record, reason in policy.removals(list(self._records.values()), now or datetime.now(UTC)):
                # Metadata first: a crash in between leaves an orphan report that the next start deletes.
                if not remove_file(self.reports_dir / f"{record.id}.json", f"retention_{reason}"):
                    continue
                remove_file(self.reports_dir / f"{record.id}.html", f"retention_{reason}")
                del self._records[record.id]
                self._bytes -= record.bytes
                removed.append((record, reason))
            if removed:
                fsync_dir(self.reports_dir)
            self._publish_gauges()
        return removed

    def _publish_gauges(self) -> None:
        REPORTS_KEPT.set(len(self._records))
        STORED_BYTES.set(self._bytes)

    # reads -------------------------------------------------------------------------------------------
    def get(self, report_id: str) -> ReportRecord | None:
        with self._lock:
            return self._records.get(report_id)

    def page(self, offset: int, limit: int) -> tuple[list[ReportRecord], int]:
        """Reports newest first, ``limit`` of them from ``offset``, and how many there are in all."""
        with self._lock:
            records = list(self._records.values())
        records.sort(key=lambda r: (r.uploaded_at, r.id), reverse=True)
        return records[offset : offset + limit], len(records)

    def previous_of(self, records: list[ReportRecord]) -> dict[str, ReportRecord]:
        """Per report id, the stored report of the same job and partitions whose window ended last at
        or before this one's start: the window its drift was measured against (absent: none kept)."""
        with self._lock:
            stored = list(self._records.values())
        result: dict[str, ReportRecord] = {}
        for record in records:
            earlier = [
                r
                for r in stored
                if r.job == record.job
                and r.partitions == record.partitions
                and r.window_end <= record.window_start
                and r.id != record.id
            ]
            if earlier:
                result[record.id] = max(earlier, key=lambda r: (r.window_end, r.id))
        return result

    def totals(self) -> tuple[int, int]:
        """Number of reports and their bytes."""
        with self._lock:
            return len(self._records), self._bytes

    def open_report(self, report_id: str) -> tuple[ReportRecord, int] | None:
        """The record and an open file descriptor of a report, or None when there is no such report.

        Only ids of the server's own pattern that are in the index are looked up; the file must be a
        regular file directly inside the store (no symlink is followed). The descriptor stays readable
        even if retention deletes the file meanwhile; the caller closes it.
        """
        if not REPORT_ID.match(report_id):
            return None
        with self._lock:
            record = self._records.get(report_id)
            if record is None:
                return None
            path = self.reports_dir / f"{report_id}.html"
            if path.resolve().parent != self._real_dir:
                STORAGE_ERRORS.labels(operation="read").inc()
                logger.error("report_outside_store", extra={"report_id": report_id})
                return None
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                STORAGE_ERRORS.labels(operation="read").inc()
                logger.error("report_unreadable", extra={"report_id": report_id, "error": repr(exc)})
                return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            STORAGE_ERRORS.labels(operation="read").inc()
            logger.error("report_not_regular_file", extra={"report_id": report_id})
            return None
        return record, fd

    def writable(self) -> bool:
        """Readiness: the store directory still exists and accepts new files."""
        return os.access(self.reports_dir, os.W_OK | os.X_OK)
