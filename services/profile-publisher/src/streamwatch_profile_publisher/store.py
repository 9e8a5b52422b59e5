"""The report store: HTML files and JSON metadata sidecars on one volume, written atomically.

Layout under the store directory::

    reports/<id>.html   the report, exactly the uploaded bytes
    reports/<id>.json   its metadata (:class:`ReportRecord`); a report exists when both exist
    reports/.tmp-*      uploads in progress (same file system, so the final rename is atomic)

The sidecars are the index: they are read once at start, then kept in memory behind one lock.

Usage::

    store = ReportStore(Path("/data/reports")).open()
    upload = store.new_upload()
    upload.write(b"<html>...</html>")
    record, created = store.commit(upload, metadata, charset="utf-8")
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from streamwatch_common.errors import StreamwatchError
from streamwatch_profile_publisher.metadata import REPORT_ID, ReportRecord, UploadMetadata, report_id_for
from streamwatch_profile_publisher.metrics import REPORTS_KEPT, STORAGE_ERRORS, STORED_BYTES
from streamwatch_profile_publisher.retention import RemovalReason, RetentionPolicy

logger = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"


class StoreError(StreamwatchError):
    """The store directory cannot be used (missing, not writable, damaged beyond repair)."""


class PendingUpload:
    """A report body being received into a temporary file next to its final place."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{_TMP_PREFIX}{secrets.token_hex(8)}.html"
        self._file: BinaryIO = self.path.open("xb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def finish(self) -> None:
        """Flush and fsync: the bytes are on disk before the rename makes them visible."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def discard(self) -> None:
        """Close and delete the temporary file; safe to call twice."""
        self._file.close()
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            STORAGE_ERRORS.labels(operation="discard").inc()
            logger.error("upload_discard_failed", extra={"path": str(self.path), "error": repr(exc)})


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
        entries = {entry.name: entry for entry in os.scandir(self.reports_dir)}
        for name, entry in entries.items():
            if name.startswith(_TMP_PREFIX):
                self._remove_file(Path(entry.path), "interrupted_upload")
        for name, entry in sorted(entries.items()):
            stem, _, suffix = name.partition(".")
            if name.startswith(_TMP_PREFIX) or suffix not in ("html", "json") or not REPORT_ID.match(stem):
                if not name.startswith(_TMP_PREFIX):
                    logger.warning("store_entry_ignored", extra={"file": name})
                continue
            if not entry.is_file(follow_symlinks=False):
                # A symlink or directory under a report name is never served; leave it for a human.
                STORAGE_ERRORS.labels(operation="load").inc()
                logger.error("store_entry_not_regular_file", extra={"file": name})
                continue
            if suffix == "html" and f"{stem}.json" not in entries:
                self._remove_file(Path(entry.path), "orphan_report_without_metadata")
            elif suffix == "json":
                self._load_record(stem, Path(entry.path), entries.get(f"{stem}.html"))
        self._publish_gauges()

    def _load_record(self, report_id: str, sidecar: Path, html: os.DirEntry[str] | None) -> None:
        if html is None:
            self._remove_file(sidecar, "orphan_metadata_without_report")
            return
        if not html.is_file(follow_symlinks=False):
            return  # logged and counted with the report file; left for a human to inspect
        try:
            record = ReportRecord.from_json(json.loads(sidecar.read_text(encoding="utf-8")))
            if record.id != report_id:
                raise ValueError(f"sidecar id {record.id!r} does not match its file name")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            STORAGE_ERRORS.labels(operation="load").inc()
            logger.error("store_metadata_unreadable", extra={"file": sidecar.name, "error": repr(exc)})
            return
        size = html.stat(follow_symlinks=False).st_size
        if size != record.bytes:
            # A crash between the report's rename and its sidecar's: the file on disk is the truth.
            record = self._repaired(record, Path(html.path))
            self._write_sidecar(record)
            logger.warning("store_metadata_repaired", extra={"report_id": record.id, "bytes": record.bytes})
        self._records[record.id] = record
        self._bytes += record.bytes

    @staticmethod
    def _repaired(record: ReportRecord, html: Path) -> ReportRecord:
        digest = hashlib.sha256()
        with html.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        data = record.to_json()
        data.update(bytes=html.stat().st_size, sha256=digest.hexdigest())
        return ReportRecord.from_json(data)

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
                id=report_id,
                job=metadata.job,
                partitions=metadata.partitions,
                window_start=metadata.window_start,
                window_end=metadata.window_end,
                rows=metadata.rows,
                replica=metadata.replica,
                bytes=upload.size,
                sha256=upload.sha256,
                charset=charset,
                uploaded_at=now,
                first_uploaded_at=previous.first_uploaded_at if previous else now,
                drift_field=metadata.drift_field,
                drift_max=metadata.drift_max,
            )
            try:
                os.replace(upload.path, self.reports_dir / f"{report_id}.html")
                self._write_sidecar(record)
                self._fsync_dir()
            except OSError:
                STORAGE_ERRORS.labels(operation="commit").inc()
                upload.discard()
                raise
            self._records[report_id] = record
            self._bytes += record.bytes - (previous.bytes if previous else 0)
            self._publish_gauges()
        return record, previous is None

    def _write_sidecar(self, record: ReportRecord) -> None:
        tmp = self.reports_dir / f"{_TMP_PREFIX}{secrets.token_hex(8)}.json"
        try:
            with tmp.open("x", encoding="utf-8") as handle:
                json.dump(record.to_json(), handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.reports_dir / f"{record.id}.json")
        finally:
            tmp.unlink(missing_ok=True)

    def _fsync_dir(self) -> None:
        fd = os.open(self.reports_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

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
                if not self._remove_file(self.reports_dir / f"{record.id}.json", f"retention_{reason}"):
                    continue
                self._remove_file(self.reports_dir / f"{record.id}.html", f"retention_{reason}")
                del self._records[record.id]
                self._bytes -= record.bytes
                removed.append((record, reason))
            if removed:
                self._fsync_dir()
            self._publish_gauges()
        return removed

    def _remove_file(self, path: Path, why: str) -> bool:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            STORAGE_ERRORS.labels(operation="remove").inc()
            logger.error("store_remove_failed", extra={"file": path.name, "reason": why, "error": repr(exc)})
            return False
        if not why.startswith("retention_"):
            logger.warning("store_file_removed", extra={"file": path.name, "reason": why})
        return True

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
