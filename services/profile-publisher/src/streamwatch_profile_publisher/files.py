"""File operations on the report store's directory: uploads received into temporary files, sidecars
written atomically, directory fsyncs and logged removals.

Every file is written under a temporary name (:data:`TMP_PREFIX`) in the same directory, fsynced, then
renamed, so a reader (or a restart) sees a whole file or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO

from streamwatch_profile_publisher.metrics import STORAGE_ERRORS

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"


class PendingUpload:
    """A report body being received into a temporary file next to its final place."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{TMP_PREFIX}{secrets.token_hex(8)}.html"
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


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` atomically: a temporary file beside it, fsynced, then renamed."""
    tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}.json"
    try:
        with tmp.open("x", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_dir(directory: Path) -> None:
    """Make the renames and removals done in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_file(path: Path, why: str) -> bool:
    """Delete ``path`` (absent is fine); False, logged and counted, when it cannot be deleted.

    Removals other than retention's (logged by the publisher) are logged here as warnings.
    """
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        STORAGE_ERRORS.labels(operation="remove").inc()
        logger.error("store_remove_failed", extra={"file": path.name, "reason": why, "error": repr(exc)})
        return False
    if not why.startswith("retention_"):
        logger.warning("store_file_removed", extra={"file": path.name, "reason": why})
    return True
