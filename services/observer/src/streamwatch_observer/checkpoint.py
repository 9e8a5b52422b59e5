"""Read the passthrough's last committed source offsets from its Spark checkpoint (read-only).

Spark's layout: ``offsets/N`` holds ``v1``, a metadata JSON line, then one JSON line per source (ours:
``{"visits": {"0": 13200, "1": 15800}}``, the next offset to read per partition); ``commits/N`` appears
once batch N is complete. The committed position is therefore the last line of ``offsets/N`` for the
newest N that has both files complete. A file caught half-written is skipped in favour of the previous
complete batch; no checkpoint at all means the job has not started.

Usage::

    committed = read_committed(Path("/checkpoint"), "visits")
    committed.offsets  # {0: 13200, 1: 15800} or None when not started
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from streamwatch_common.errors import CheckpointError

logger = logging.getLogger(__name__)

_VERSION_PREFIX = "v"


@dataclass(frozen=True)
class Committed:
    """The passthrough's committed position: ``offsets`` is None until its first batch is committed."""

    batch_id: int | None
    offsets: dict[int, int] | None


def _batch_ids(directory: Path) -> list[int]:
    # Spark writes through temporary files (".<n>.<uuid>.tmp", ".crc"): only bare integers count.
    if not directory.is_dir():
        return []
    return sorted((int(p.name) for p in directory.iterdir() if p.name.isdigit()), reverse=True)


def _complete_commit(path: Path) -> bool:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    if len(lines) < 2 or not lines[0].startswith(_VERSION_PREFIX):
        return False
    try:
        json.loads(lines[1])
    except ValueError:
        return False
    return True


def _source_offsets(path: Path, source_topic: str) -> dict[int, int] | None:
    """The source topic's offsets in ``offsets/N``, or None when the file is incomplete."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return None
    if len(lines) < 3 or not lines[0].startswith(_VERSION_PREFIX):
        return None
    try:
        json.loads(lines[1])
        sources = json.loads(lines[-1])
    except ValueError:
        return None
    if not isinstance(sources, dict):
        return None
    topic_offsets = sources.get(source_topic)
    if not isinstance(topic_offsets, dict):
        return None
    try:
        return {int(partition): int(offset) for partition, offset in topic_offsets.items()}
    except (TypeError, ValueError):
        return None


def read_committed(checkpoint: Path, source_topic: str) -> Committed:
    """The newest complete committed batch's source offsets; raises CheckpointError only when the
    checkpoint exists but cannot be listed (permissions, I/O), never for a job that has not started."""
    try:
        commit_ids = _batch_ids(checkpoint / "commits")
    except OSError as exc:
        raise CheckpointError(f"cannot list {checkpoint / 'commits'}: {exc}") from exc
    for batch_id in commit_ids:
        if not _complete_commit(checkpoint / "commits" / str(batch_id)):
            logger.info("checkpoint_commit_incomplete", extra={"batch_id": batch_id})
            continue
        offsets = _source_offsets(checkpoint / "offsets" / str(batch_id), source_topic)
        if offsets is None:
            logger.info("checkpoint_offsets_incomplete", extra={"batch_id": batch_id})
            continue
        return Committed(batch_id, offsets)
    return Committed(None, None)
