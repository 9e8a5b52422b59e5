"""Read the passthrough's last committed source offsets from its Spark checkpoint (read-only), on a local
disk or on object storage (:class:`~streamwatch_common.object_store.CheckpointStore`).

Spark's layout: ``offsets/N`` holds ``v1``, a metadata JSON line, then one line per source of the query,
in the query's source order: a JSON object (a Kafka source's: ``{"visits": {"0": 13200, "1": 15800}}``,
the next offset to read per partition), a number (a file or rate source's), or ``-`` for a source
without an offset yet. ``commits/N`` appears once
batch N is complete. The committed position is therefore the observed topic's source line of
``offsets/N`` for the newest N that has both files complete. A file caught half-written is skipped in
favour of the previous complete batch. No checkpoint at all means the job has not started; committed
batches none of which can be read mean the checkpoint is damaged, which is not the same thing. A log
version other than the one Spark writes for these files (``v1`` since Spark 2, and in Spark 4 still) is a
layout this reader does not know: damaged too, logged as ``checkpoint_layout_unsupported`` naming the
file, never guessed at.

Usage::

    committed = read_committed(CheckpointStore.open("/checkpoint", settings), "visits")
    committed.offsets  # {0: 13200, 1: 15800} or None when not started
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from streamwatch_common.object_store import CheckpointStore
from streamwatch_observer import metrics

logger = logging.getLogger(__name__)

# The version line of the offset and commit logs this reader knows (Spark's OffsetSeqLog, CommitLog).
_VERSION = "v1"


@dataclass(frozen=True)
class Committed:
    """The passthrough's committed position: ``offsets`` is None until its first batch is committed, or
    when no committed batch can be read (``damaged``)."""

    batch_id: int | None
    offsets: dict[int, int] | None
    damaged: bool = False
    # The checkpoint could not be listed (an object store away, refused credentials, a missing bucket).
    unreadable: bool = False
    # When Spark finished the batch (mtime of ``commits/N``, epoch seconds): what STOP is judged on.
    commit_time: float | None = None


class _Unreadable(Exception):
    """An ``offsets/N`` or ``commits/N`` file that is not what Spark writes (truncated, corrupt)."""


class _Unsupported(_Unreadable):
    """A complete file of a log version this reader does not know (another Spark's layout)."""


def _check_version(line: str) -> None:
    if line.strip() != _VERSION:
        raise _Unsupported(f"log version {line.strip()[:20]!r}, this observer reads {_VERSION!r}")


def _log_lines(store: CheckpointStore, name: str, minimum: int, *, skip_blank: bool = False) -> list[str]:
    """The lines of a log file (``commits/N``, ``offsets/N``) whose version line is Spark's and whose
    metadata line is JSON; raises _Unreadable for a file that is incomplete or corrupt, and _Unsupported
    for one of another log version."""
    try:
        lines = store.read_text(name).splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _Unreadable(str(exc)) from exc
    if skip_blank:
        lines = [line for line in lines if line.strip()]
    if len(lines) < minimum:
        raise _Unreadable(f"fewer than {minimum} lines")
    _check_version(lines[0])
    try:
        json.loads(lines[1])
    except ValueError as exc:
        raise _Unreadable(f"the metadata line is not JSON: {exc}") from exc
    return lines


def _mtime(store: CheckpointStore, name: str) -> float | None:
    # The file was just read; losing it now means Spark's cleanup removed it: STOP is not judged this
    # time, the next measurement reads a newer batch.
    try:
        return store.mtime(name)
    except OSError as exc:
        metrics.LAG_FAILURES.labels("commit_time").inc()
        logger.warning(
            "checkpoint_commit_time_unreadable", extra={"path": f"{store.location}/{name}", "error": str(exc)}
        )
        return None


def _source_offsets(store: CheckpointStore, name: str, source_topic: str) -> dict[int, int] | None:
    """The source topic's offsets in ``offsets/N`` (None when no source line names the topic); raises
    _Unreadable for a file that is incomplete or corrupt."""
    lines = _log_lines(store, name, 3, skip_blank=True)
    try:
        sources = [None if line.strip() == "-" else json.loads(line) for line in lines[2:]]
    except ValueError as exc:
        raise _Unreadable(f"a source line is not JSON: {exc}") from exc
    for source in sources:
        if isinstance(source, dict) and isinstance(source.get(source_topic), dict):
            try:
                return {int(p): int(o) for p, o in source[source_topic].items()}
            except (TypeError, ValueError) as exc:
                raise _Unsupported(f"offsets of {source_topic} are not integers per partition") from exc
        if source is not None and not isinstance(source, dict | int):
            raise _Unsupported("a source line is neither a JSON object, a number nor '-'")
    return None


def read_committed(checkpoint: CheckpointStore | str | os.PathLike[str], source_topic: str) -> Committed:
    """The newest complete committed batch's source offsets (``checkpoint``: a store, or a local
    directory); raises CheckpointError only when the checkpoint cannot be listed (permissions, I/O, an
    object store away or refusing the credentials), never for a job that has not started."""
    store = CheckpointStore.of(checkpoint)
    damaged = False
    for batch_id in store.batch_ids("commits"):
        commit, offsets_file = f"commits/{batch_id}", f"offsets/{batch_id}"
        try:
            _log_lines(store, commit, 2)
        except _Unreadable as exc:
            _log_unreadable(exc, batch_id, f"{store.location}/{commit}", "checkpoint_commit_incomplete")
            damaged = True
            continue
        try:
            offsets = _source_offsets(store, offsets_file, source_topic)
        except _Unreadable as exc:
            where = f"{store.location}/{offsets_file}"
            _log_unreadable(exc, batch_id, where, "checkpoint_offsets_incomplete")
            damaged = True
            continue
        if offsets is None:  # a batch that read nothing of the observed topic
            continue
        return Committed(batch_id, offsets, commit_time=_mtime(store, commit))
    return Committed(None, None, damaged=damaged)


def _log_unreadable(exc: _Unreadable, batch_id: int, file: str, incomplete_event: str) -> None:
    """A file caught half-written is routine (a later read finds it whole); a layout of another version
    is not, and says so at warning level. Either names the file."""
    extra = {"batch_id": batch_id, "file": file, "error": str(exc)}
    if isinstance(exc, _Unsupported):
        logger.warning("checkpoint_layout_unsupported", extra=extra)
    else:
        logger.info(incomplete_event, extra=extra)
