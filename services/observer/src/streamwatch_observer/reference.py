"""A partition's pinned drift reference: its first windows merged into one summary, kept in Elasticsearch.

Window-to-window drift (``drift.DriftTracker``) sees a step change, but a slow drift whose every step
stays below the threshold never shows, and the previous window is lost on every rebalance. The pinned
reference is the merge of a partition's first ``windows`` windows that have at least ``min_records``
parsed rows (``OBSERVER_DRIFT_REFERENCE_WINDOWS``): row counts and category counts summed (at most
``TOP_VALUES`` categories, the rest in the "other" bin), numbers counted in the first window's decile
edges, null shares merged weighted by rows. Once that many windows are merged the reference is pinned
and never changes; every later window gets a score per field against it, with the same scoring and
noise floor as window to window (:func:`drift.score`). While the reference is being built its windows
get no reference score: they are part of it, and a reference of one or two windows is the noisy
comparison the minimum exists to avoid.

The reference is stored after every window merged into it, one document per job, topic, partition and
reference name (``OBSERVER_DRIFT_REFERENCE_NAME``), so a new owner after a rebalance, or the same replica
after a restart, continues from where the last owner stopped. A save runs on a thread of its own (a
round trip to Elasticsearch each window the reference is built from, which the measuring thread, and so
the consume loop, waited for); its outcome is taken before the partition's next save, at its next
window, or when the partition goes (:meth:`ReferenceTracker.forget` waits for it). A window whose first
offset is not past the last merged one (re-read after a crash between the save and the commit) is not
merged twice. Saves are conditional on the version loaded (``sink.ObservationSink.put_reference``): a
stale owner cannot overwrite what a newer one stored; its conflict is logged and counted, and it reloads
the stored reference. A failed load or save is logged, counted in
``observer_drift_reference_failures_total`` and retried at the partition's next window. An operator pins
a new reference by choosing a new name; the old document stays stored.

The summary itself (merging, scoring, its stored form) is ``reference_summary.Reference``.

Not thread-safe, like ``DriftTracker``: the measuring worker loads and observes; :meth:`forget` runs only
while the worker is idle (rebalance callbacks wait for it).

Usage::

    references = ReferenceTracker(
        sink, job="passthrough", topic="processed_visits", name="initial", windows=5, min_records=200
    )
    references.load([0, 1])                                # right after an assignment, on the worker
    references.observe(0, 0, 9999, leaves, summaries)      # {} while the reference is being built
    references.observe(0, 50000, 59999, leaves, summaries) # {"page": 0.31, ...} once it is pinned
    references.forget([0])                                 # partition revoked: the next owner loads it
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa

from streamwatch_common.errors import SinkError
from streamwatch_observer import metrics
from streamwatch_observer.documents import iso
from streamwatch_observer.drift import FieldSummary, summarize_leaves
from streamwatch_observer.reference_summary import Reference
from streamwatch_observer.sink import ReferenceConflict, StoredVersion

logger = logging.getLogger(__name__)


class ReferenceStore(Protocol):
    """Where references are kept (:class:`~streamwatch_observer.sink.ObservationSink` is one)."""

    def get_reference(self, doc_id: str) -> tuple[dict[str, Any], StoredVersion] | None: ...

    def put_reference(
        self, doc_id: str, document: dict[str, Any], version: StoredVersion | None
    ) -> StoredVersion: ...


def reference_id(job: str, topic: str, partition: int, name: str) -> str:
    """Id of the reference document of one partition."""
    return f"{job}-{topic}-{partition}-{name}"


@dataclass
class _Owned:
    """The reference of one owned partition and the stored version it was read or saved as."""

    reference: Reference
    version: StoredVersion | None
    unsaved: bool = False
    # The save in flight on the saving thread; its result is the stored version the next save names.
    saving: Future[StoredVersion] | None = None


class ReferenceTracker:
    """The pinned drift reference of every owned partition: loaded, built, saved and scored against."""

    def __init__(
        self,
        store: ReferenceStore,
        *,
        job: str,
        topic: str,
        name: str,
        windows: int,
        min_records: int,
        replica: str = "",
    ) -> None:
        self.store = store
        self.job = job
        self.topic = topic
        self.name = name
        self.windows = windows
        self.min_records = min_records
        self.replica = replica
        self._owned: dict[int, _Owned] = {}
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reference-save")

    def load(self, partitions: Iterable[int]) -> None:
        """Read the stored references of ``partitions`` not loaded yet (a failure is retried later)."""
        for partition in partitions:
            if partition not in self._owned:
                self._load(partition)

    def observe(
        self,
        partition: int,
        start_offset: int,
        end_offset: int,
        leaves: pa.Table,
        summaries: Mapping[str, FieldSummary] | None = None,
    ) -> dict[str, float]:
        """Per leaf field, the drift of this window against the partition's pinned reference ({} while
        the reference is built or unreadable, and below ``min_records`` rows). A window of a reference
        still being built is merged into it and the reference saved."""
        if leaves.num_rows < self.min_records:
            return {}
        owned = self._owned.get(partition) or self._load(partition)
        if owned is not None:
            owned = self._settle(partition, owned)  # the previous save's version, or a reload
        if owned is None:
            return {}  # not loaded: neither merged (what is stored is unknown) nor scored
        if summaries is None:
            summaries = summarize_leaves(leaves)
        reference = owned.reference
        if reference.pinned:
            if owned.unsaved:
                self._save(partition, owned)
            return reference.scores(leaves, summaries)
        if start_offset > reference.merged_until:
            reference.merge(leaves, summaries, end_offset)
            owned.unsaved = True
            self._export(partition, reference)
            if reference.pinned:
                logger.info("drift_reference_pinned", extra=self._context(partition, reference))
        if owned.unsaved:
            self._save(partition, owned)
        return {}

    def settle(self) -> None:
        """Wait for every save in flight and take its outcome (as the next window would)."""
        for partition, owned in list(self._owned.items()):
            self._settle(partition, owned)

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked or lost: their saves in flight are waited for (each bounded by the
        Elasticsearch timeout), so their next owner loads what this one stored."""
        for partition in partitions:
            owned = self._owned.pop(partition, None)
            if owned is None:
                continue
            self._outcome(partition, owned, then="dropped")  # the partition goes anyway
            metrics.DRIFT_REFERENCE_WINDOWS.remove(self.job, self.topic, str(partition))

    def close(self) -> None:
        """Finish the saves in flight and stop the saving thread."""
        self._saver.shutdown(wait=True)

    def reference(self, partition: int) -> Reference | None:
        """The loaded reference of ``partition`` (None: not loaded)."""
        owned = self._owned.get(partition)
        return None if owned is None else owned.reference

    @property
    def partitions(self) -> list[int]:
        return sorted(self._owned)

    def _load(self, partition: int) -> _Owned | None:
        doc_id = reference_id(self.job, self.topic, partition, self.name)
        try:
            stored = self.store.get_reference(doc_id)
            if stored is None:
                owned = _Owned(Reference(self.windows), None)
            else:
                document, version = stored
                owned = _Owned(Reference.from_document(document, self.windows), version)
                # A reference stored unpinned that the current setting pins: store it pinned.
                owned.unsaved = owned.reference.pinned and not document.get("pinned")
        except (SinkError, KeyError, TypeError, ValueError) as exc:
            metrics.DRIFT_REFERENCE_FAILURES.labels("load").inc()
            logger.warning(
                "drift_reference_load_failed",
                extra={"partition": partition, "id": doc_id, "error": str(exc), "retry": "next window"},
            )
            return None
        self._owned[partition] = owned
        self._export(partition, owned.reference)
        logger.info(
            "drift_reference_loaded",
            extra={**self._context(partition, owned.reference), "stored": stored is not None},
        )
        return owned

    def _save(self, partition: int, owned: _Owned) -> None:
        reference = owned.reference
        doc_id = reference_id(self.job, self.topic, partition, self.name)
        document = {
            "updated_at": iso(datetime.now(UTC)),
            "job": self.job,
            "topic": self.topic,
            "partition": partition,
            "name": self.name,
            "replica": self.replica,
            **reference.to_document(),
        }
        # Built here: the next window changes the reference while the save is in flight.
        owned.unsaved = False
        owned.saving = self._saver.submit(self.store.put_reference, doc_id, document, owned.version)

    def _settle(self, partition: int, owned: _Owned) -> _Owned | None:
        """The partition after its save in flight (waited for): saved, unsaved again after a failure
        (saved at its next window), or, after a conflict, the stored reference reloaded (None when that
        load fails)."""
        if self._outcome(partition, owned, then="reloaded"):
            return owned
        self.forget([partition])
        return self._load(partition)

    def _outcome(self, partition: int, owned: _Owned, *, then: str) -> bool:
        """Take the outcome of the save in flight (none: True); False after a conflict (the stored one is
        newer), logged with what the caller does ``then``."""
        saving, owned.saving = owned.saving, None
        if saving is None:
            return True
        reference = owned.reference
        try:
            owned.version = saving.result()
        except ReferenceConflict as exc:
            # Another owner stored a newer version (this replica held a partition it no longer owns, or a
            # save it saw fail had succeeded): take the stored one.
            metrics.DRIFT_REFERENCE_FAILURES.labels("conflict").inc()
            logger.warning(
                "drift_reference_conflict",
                extra={**self._context(partition, reference), "error": str(exc), "then": then},
            )
            return False
        except SinkError as exc:
            metrics.DRIFT_REFERENCE_FAILURES.labels("save").inc()
            logger.warning(
                "drift_reference_save_failed",
                extra={**self._context(partition, reference), "error": str(exc), "retry": "next window"},
            )
            owned.unsaved = True
        return True

    def _export(self, partition: int, reference: Reference) -> None:
        metrics.DRIFT_REFERENCE_WINDOWS.labels(self.job, self.topic, str(partition)).set(reference.windows)

    def _context(self, partition: int, reference: Reference) -> dict[str, Any]:
        return {
            "partition": partition,
            "reference": self.name,
            "windows": reference.windows,
            "pinned": reference.pinned,
            "merged_until": reference.merged_until,
        }
