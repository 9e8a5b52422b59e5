"""Elasticsearch sink of the observation documents: index template at start, idempotent bulk writes.

Documents carry deterministic ids, so writing the same observation twice overwrites it. A bulk write
either succeeds for every document or raises :class:`SinkError`; the caller retries and commits consumer
offsets only after a success.

The partitions' pinned drift references (``reference``) live in an index of their own,
``<index>_drift_reference``, one document per job, topic, partition and reference name. They are read
and written one by one with Elasticsearch's optimistic concurrency (``if_seq_no`` / ``if_primary_term``,
``op_type=create`` for a new one): a save based on an outdated version raises
:class:`ReferenceConflict` instead of overwriting what a newer owner stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from streamwatch_common.errors import SinkError
from streamwatch_common.search import index_replicas_settings
from streamwatch_common.visit_record import DEFAULT_REQUIRED_FIELDS
from streamwatch_observer.fields import safe_name

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

logger = logging.getLogger(__name__)

StoredVersion = tuple[int, int]
"""A stored document's ``(_seq_no, _primary_term)``: what a conditional write names."""


class ReferenceConflict(SinkError):
    """A drift reference changed in Elasticsearch since it was read (another owner saved it)."""


_COUNT = {"type": "long"}
_KEYWORD = {"type": "keyword"}
_DATE = {"type": "date"}

_PROPERTIES: dict[str, Any] = {
    "@timestamp": _DATE,
    "observed_at": _DATE,
    "doc_type": _KEYWORD,
    "job": _KEYWORD,
    "topic": _KEYWORD,
    "source_topic": _KEYWORD,
    "partition": {"type": "integer"},
    "replica": _KEYWORD,
    # window documents
    "window_start": _DATE,
    "window_end": _DATE,
    "start_offset": _COUNT,
    "end_offset": _COUNT,
    "all_events": _COUNT,
    "unparseable": _COUNT,
    "duplicates": _COUNT,
    # Parsed records with at least one required field null or empty.
    "invalid_records": _COUNT,
    # Safe flattened field names (context__user__ip) → null-or-empty counts, one long per field.
    "null_counts": {"type": "object", "dynamic": True},
    "null_counts_left_out": _COUNT,
    # Safe field name → drift score against the partition's previous window (Jensen-Shannon distance).
    "drift": {"type": "object", "dynamic": True},
    "drift_max": {"type": "double"},
    # Safe field name → drift score against the partition's pinned reference (absent while it is built).
    "drift_reference": {"type": "object", "dynamic": True},
    "drift_reference_max": {"type": "double"},
    # Source partition → lag in offsets at the time the window was written (the seed's shape).
    "lag_per_partition": {"type": "object", "dynamic": True},
    # lag documents
    "lag_offsets": _COUNT,
    "committed_offset": _COUNT,
    "lag_seconds": {"type": "double"},
    "status": _KEYWORD,
    # Burrow-style judgement over the evaluation window: ok, warn, stall, stop, rewind (null unless ok).
    "evaluation": _KEYWORD,
    "batch_id": _COUNT,
}


def mappings(required_fields: Sequence[str]) -> dict[str, Any]:
    """The index mappings: the fixed fields and one ``invalid_<field>`` count per required field (the
    null-or-empty count a window document carries for it, named with :func:`safe_name`)."""
    invalid = {f"invalid_{safe_name(name)}": _COUNT for name in required_fields}
    # Drift scores are fractions: a first score of exactly 0 must not make the field a long.
    drift_scores = [
        {"drift_scores": {"path_match": "drift.*", "mapping": {"type": "double"}}},
        {"drift_reference_scores": {"path_match": "drift_reference.*", "mapping": {"type": "double"}}},
    ]
    return {"dynamic": True, "dynamic_templates": drift_scores, "properties": {**_PROPERTIES, **invalid}}


# A reference being built is saved after every window it merges, on the measuring thread. Synced to
# disk on every request (Elasticsearch's default), each save held that thread for as long as a window's
# measurement. A reference is rebuildable statistics, versioned: a save lost with a crashed search node
# makes the next save conflict, and the owner then continues from what is stored (``reference``). The
# observation documents, whose offsets are committed after the write, keep the per-request sync.
REFERENCE_SETTINGS: dict[str, Any] = {"translog": {"durability": "async"}}

REFERENCE_MAPPINGS: dict[str, Any] = {
    # Fields added later stay in the source unindexed instead of failing the save.
    "dynamic": False,
    "properties": {
        "updated_at": _DATE,
        "job": _KEYWORD,
        "topic": _KEYWORD,
        "partition": {"type": "integer"},
        "name": _KEYWORD,
        "replica": _KEYWORD,
        "windows": {"type": "integer"},
        "target_windows": {"type": "integer"},
        "pinned": {"type": "boolean"},
        "merged_until": _COUNT,
        # Field name → summary: read back whole, never searched (record keys and values are input, and
        # would otherwise become mapped fields).
        "fields": {"type": "object", "enabled": False},
    },
}
"""Mappings of the drift reference index (see ``reference``)."""


def reference_index(index: str) -> str:
    """The drift reference index that goes with the observation index ``index``."""
    return f"{index}_drift_reference"


# The mappings for the default required fields, for readers that need the field names without settings.
MAPPINGS = mappings(DEFAULT_REQUIRED_FIELDS)


class ObservationSink:
    """Writes observation documents to one index of Elasticsearch 8.

    Usage::

        sink = ObservationSink(
            settings.elasticsearch_client(),
            "visits_observation_stats",
            settings.required_fields,
            replicas=settings.elasticsearch_index_replicas,  # 0 on a single node
        )
        sink.ensure_template()
        sink.write([("passthrough-processed_visits-0-0-99", {"doc_type": "window", ...})])
    """

    def __init__(
        self,
        client: Elasticsearch,
        index: str,
        required_fields: Sequence[str] = DEFAULT_REQUIRED_FIELDS,
        *,
        replicas: int | None = None,
    ) -> None:
        self.client = client
        self.index = index
        self.reference_index = reference_index(index)
        self.mappings = mappings(required_fields)
        # number_of_replicas of the index (None: the cluster's default).
        self.replicas = replicas

    def ensure_template(self) -> None:
        """Create or update the index templates of the observation and drift reference indices
        (idempotent), and give existing indices the replica count; raises SinkError when unreachable."""
        self._ensure_template(self.index, self.mappings)
        self._ensure_template(self.reference_index, REFERENCE_MAPPINGS, REFERENCE_SETTINGS)

    def _ensure_template(
        self, index: str, index_mappings: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> None:
        settings = {**index_replicas_settings(self.replicas), **(extra or {})}
        template: dict[str, Any] = {"mappings": index_mappings}
        if settings:
            template["settings"] = {"index": settings}
        try:
            self.client.indices.put_index_template(
                name=index, index_patterns=[index], template=template, priority=100
            )
            # A template shapes new indices only: an index made before (say with the default 1 replica,
            # yellow forever on one node) gets the settings here; both are dynamic settings.
            if settings and self.client.indices.exists(index=index):
                self.client.indices.put_settings(index=index, settings={"index": settings})
        except Exception as exc:
            raise SinkError(f"index template {index}: {exc}") from exc
        logger.info("index_template_ready", extra={"index": index, "replicas": self.replicas})

    def get_reference(self, doc_id: str) -> tuple[dict[str, Any], StoredVersion] | None:
        """A stored drift reference and its version (None: none stored under ``doc_id``, or no index yet).

        Raises SinkError when Elasticsearch does not answer."""
        try:
            response = self.client.options(ignore_status=404).get(index=self.reference_index, id=doc_id)
        except Exception as exc:
            raise SinkError(f"drift reference {doc_id}: {exc}") from exc
        if not response.get("found"):
            return None
        return response["_source"], (int(response["_seq_no"]), int(response["_primary_term"]))

    def put_reference(
        self, doc_id: str, document: dict[str, Any], version: StoredVersion | None
    ) -> StoredVersion:
        """Store a drift reference if the stored one is still ``version`` (None: none may exist yet);
        returns the new version. Raises ReferenceConflict when another write came first, SinkError when
        Elasticsearch does not answer."""
        from elasticsearch import ConflictError

        condition: dict[str, Any] = {"op_type": "create"}
        if version is not None:
            condition = {"if_seq_no": version[0], "if_primary_term": version[1]}
        try:
            response = self.client.index(
                index=self.reference_index, id=doc_id, document=document, **condition
            )
        except ConflictError as exc:
            raise ReferenceConflict(f"drift reference {doc_id} changed since version {version}") from exc
        except Exception as exc:
            raise SinkError(f"drift reference {doc_id}: {exc}") from exc
        return int(response["_seq_no"]), int(response["_primary_term"])

    def last_end_offsets(self, job: str, topic: str, partitions: list[int]) -> dict[int, int]:
        """Per partition, the highest ``end_offset`` of a stored window (absent: no window yet).

        Raises SinkError when the index cannot be searched; a missing index means no windows."""
        result: dict[int, int] = {}
        for partition in partitions:
            query = {
                "bool": {
                    "filter": [
                        {"term": {"doc_type": "window"}},
                        {"term": {"job": job}},
                        {"term": {"topic": topic}},
                        {"term": {"partition": partition}},
                    ]
                }
            }
            try:
                response = self.client.search(
                    index=self.index,
                    query=query,
                    size=1,
                    sort=[{"end_offset": {"order": "desc"}}],
                    source_includes=["end_offset"],
                    ignore_unavailable=True,
                )
            except Exception as exc:
                raise SinkError(f"last window of partition {partition}: {exc}") from exc
            hits = response.get("hits", {}).get("hits", [])
            if hits:
                result[partition] = int(hits[0]["_source"]["end_offset"])
        return result

    def write(self, documents: list[tuple[str, dict[str, Any]]]) -> None:
        """Index every document under its id; raises SinkError unless all of them were written."""
        if not documents:
            return
        operations: list[dict[str, Any]] = []
        for doc_id, doc in documents:
            operations.append({"index": {"_index": self.index, "_id": doc_id}})
            operations.append(doc)
        try:
            response = self.client.bulk(operations=operations)
        except Exception as exc:
            raise SinkError(f"bulk write of {len(documents)} documents: {exc}") from exc
        if response.get("errors"):
            failed = [
                item["index"] for item in response.get("items", []) if item.get("index", {}).get("error")
            ]
            first = failed[0] if failed else {}
            raise SinkError(
                f"bulk write: {len(failed)} of {len(documents)} documents refused,"
                f" first: {first.get('_id')}: {first.get('error')}"
            )
