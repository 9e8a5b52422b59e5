"""Rebuilding the store's index at start from the sidecars on disk.

What an interrupted run left behind is cleared: temporary files, a report without its metadata (or the
reverse), a sidecar whose size and checksum a crash left stale. Symlinks and other non-regular files
under a report's name are never indexed; they are logged and left for a human.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from streamwatch_profile_publisher.files import TMP_PREFIX, remove_file, write_json
from streamwatch_profile_publisher.metadata import REPORT_ID, ReportRecord
from streamwatch_profile_publisher.metrics import STORAGE_ERRORS

logger = logging.getLogger(__name__)


def load_records(reports_dir: Path) -> dict[str, ReportRecord]:
    """The records of the reports in ``reports_dir``, by id, after clearing leftovers."""
    entries = {entry.name: entry for entry in os.scandir(reports_dir)}
    for name, entry in entries.items():
        if name.startswith(TMP_PREFIX):
            remove_file(Path(entry.path), "interrupted_upload")
    records: dict[str, ReportRecord] = {}
    for name, entry in sorted(entries.items()):
        stem, _, suffix = name.partition(".")
        if name.startswith(TMP_PREFIX) or suffix not in ("html", "json") or not REPORT_ID.match(stem):
            if not name.startswith(TMP_PREFIX):
                logger.warning("store_entry_ignored", extra={"file": name})
            continue
        if not entry.is_file(follow_symlinks=False):
            # A symlink or directory under a report name is never served; leave it for a human.
            STORAGE_ERRORS.labels(operation="load").inc()
            logger.error("store_entry_not_regular_file", extra={"file": name})
            continue
        if suffix == "html" and f"{stem}.json" not in entries:
            remove_file(Path(entry.path), "orphan_report_without_metadata")
        elif suffix == "json":
            record = _load_record(stem, Path(entry.path), entries.get(f"{stem}.html"))
            if record is not None:
                records[record.id] = record
    return records


def _load_record(report_id: str, sidecar: Path, html: os.DirEntry[str] | None) -> ReportRecord | None:
    if html is None:
        remove_file(sidecar, "orphan_metadata_without_report")
        return None
    if not html.is_file(follow_symlinks=False):
        return None  # logged and counted with the report file; left for a human to inspect
    try:
        record = ReportRecord.from_json(json.loads(sidecar.read_text(encoding="utf-8")))
        if record.id != report_id:
            raise ValueError(f"sidecar id {record.id!r} does not match its file name")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        STORAGE_ERRORS.labels(operation="load").inc()
        logger.error("store_metadata_unreadable", extra={"file": sidecar.name, "error": repr(exc)})
        return None
    size = html.stat(follow_symlinks=False).st_size
    if size != record.bytes:
        # A crash between the report's rename and its sidecar's: the file on disk is the truth.
        record = _repaired(record, Path(html.path))
        write_json(sidecar, record.to_json())
        logger.warning("store_metadata_repaired", extra={"report_id": record.id, "bytes": record.bytes})
    return record


def _repaired(record: ReportRecord, html: Path) -> ReportRecord:
    digest = hashlib.sha256()
    with html.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    data = record.to_json()
    data.update(bytes=html.stat().st_size, sha256=digest.hexdigest())
    return ReportRecord.from_json(data)
