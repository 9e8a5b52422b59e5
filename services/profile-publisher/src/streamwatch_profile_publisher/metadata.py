"""What an uploaded report is about: the upload's query parameters, validated, and the stored record."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from streamwatch_common.errors import StreamwatchError

REPORT_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_TEXT = 200
# Keys are only hashed, never shown; the observer's grow with the number of partitions in a report.
_MAX_KEY = 2048
_UNENCODED_OFFSET = re.compile(r" (\d{2}:?\d{2})$")
_MAX_PARTITIONS = 10_000


class MissingMetadata(StreamwatchError):
    """A required query parameter of an upload is absent (HTTP 400)."""


class InvalidMetadata(StreamwatchError):
    """A query parameter of an upload is present but unusable (HTTP 422)."""


def report_id_for(key: str | None) -> str:
    """Server-side id: a hash of the idempotency key (retries land on one report), else random.

    Never derived from a path the client chose, and always matching :data:`REPORT_ID`.
    """
    if key is None:
        return secrets.token_hex(16)
    return hashlib.sha256(b"streamwatch-report\0" + key.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, kw_only=True)
class ReportSubject:
    """What a report is about: the job, partitions and window it profiles, and the window's drift."""

    job: str
    partitions: tuple[int, ...]
    window_start: datetime
    window_end: datetime
    rows: int
    replica: str
    # The most drifted field of the window against the partition's previous one, and its score.
    drift_field: str | None = None
    drift_max: float | None = None

    def subject(self) -> dict[str, Any]:
        """The :class:`ReportSubject` fields alone, to build another kind of record about the same."""
        return {field.name: getattr(self, field.name) for field in fields(ReportSubject)}


@dataclass(frozen=True, kw_only=True)
class UploadMetadata(ReportSubject):
    """The metadata a client sends with a report (query parameters of ``POST /api/reports``)."""

    key: str | None

    @classmethod
    def from_query(cls, params: Mapping[str, Sequence[str]]) -> UploadMetadata:
        """Validate the parameters; raises :class:`MissingMetadata` or :class:`InvalidMetadata`."""
        missing = [
            name
            for name in ("job", "partitions", "window_start", "window_end", "rows", "replica")
            if not params.get(name)
        ]
        if missing:
            raise MissingMetadata(f"missing query parameter(s): {', '.join(missing)}")
        window_start = _timestamp(params, "window_start")
        window_end = _timestamp(params, "window_end")
        if window_end < window_start:
            raise InvalidMetadata("window_end is before window_start")
        keys = params.get("key") or []
        return cls(
            job=_text(params, "job"),
            partitions=_partitions(params["partitions"]),
            window_start=window_start,
            window_end=window_end,
            rows=_count(params, "rows"),
            replica=_text(params, "replica"),
            key=_text(params, "key", _MAX_KEY) if keys and keys[-1] else None,
            drift_field=_text(params, "drift_field") if params.get("drift_field") else None,
            drift_max=_score(params, "drift_max") if params.get("drift_max") else None,
        )


@dataclass(frozen=True, kw_only=True)
class ReportRecord(ReportSubject):
    """A stored report: what it is about, its size, checksum and when it was (last) uploaded."""

    id: str
    bytes: int
    sha256: str
    charset: str
    uploaded_at: datetime
    first_uploaded_at: datetime

    @property
    def url(self) -> str:
        """Path of the report on this server."""
        return f"/reports/{self.id}"

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form, used for the sidecar file and the API."""
        doc = {"id": self.id, **asdict(self)}
        doc["partitions"] = list(self.partitions)
        for name in ("window_start", "window_end", "uploaded_at", "first_uploaded_at"):
            doc[name] = _iso(getattr(self, name))
        doc["url"] = self.url
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ReportRecord:
        """Inverse of :meth:`to_json`; raises KeyError/ValueError/TypeError on a damaged sidecar."""
        return cls(
            id=str(doc["id"]),
            job=str(doc["job"]),
            partitions=tuple(int(p) for p in doc["partitions"]),
            window_start=datetime.fromisoformat(doc["window_start"]),
            window_end=datetime.fromisoformat(doc["window_end"]),
            rows=int(doc["rows"]),
            replica=str(doc["replica"]),
            bytes=int(doc["bytes"]),
            sha256=str(doc["sha256"]),
            charset=str(doc["charset"]),
            uploaded_at=datetime.fromisoformat(doc["uploaded_at"]),
            first_uploaded_at=datetime.fromisoformat(doc["first_uploaded_at"]),
            # Absent from sidecars written before drift was reported.
            drift_field=None if doc.get("drift_field") is None else str(doc["drift_field"]),
            drift_max=None if doc.get("drift_max") is None else float(doc["drift_max"]),
        )

    def search_document(self, public_base: str) -> dict[str, Any]:
        """The Elasticsearch document: one per report, ``@timestamp`` = end of the observed window."""
        return {
            "@timestamp": _iso(self.window_end),
            "job": self.job,
            "partitions": list(self.partitions),
            "window_start": _iso(self.window_start),
            "window_end": _iso(self.window_end),
            "rows": self.rows,
            "replica": self.replica,
            "report_id": self.id,
            "report_url": public_base + self.url,
            "bytes": self.bytes,
            "uploaded_at": _iso(self.uploaded_at),
        }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _last(params: Mapping[str, Sequence[str]], name: str) -> str:
    return params[name][-1].strip()


def _text(params: Mapping[str, Sequence[str]], name: str, longest: int = _MAX_TEXT) -> str:
    value = _last(params, name)
    if not value or len(value) > longest or not value.isprintable():
        raise InvalidMetadata(f"{name}: must be 1-{longest} printable characters")
    return value


def _count(params: Mapping[str, Sequence[str]], name: str) -> int:
    value = _last(params, name)
    if not value.isdigit() or len(value) > 18:
        raise InvalidMetadata(f"{name}: must be a non-negative integer (got {value[:40]!r})")
    return int(value)


def _score(params: Mapping[str, Sequence[str]], name: str) -> float:
    value = _last(params, name)
    try:
        score = float(value)
    except ValueError:
        raise InvalidMetadata(f"{name}: not a number (got {value[:40]!r})") from None
    if not 0 <= score <= 1:
        raise InvalidMetadata(f"{name}: must be between 0 and 1 (got {value[:40]!r})")
    return score


def _partitions(values: Sequence[str]) -> tuple[int, ...]:
    # Both `partitions=0,1` and `partitions=0&partitions=1` are accepted.
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    if not items or len(items) > _MAX_PARTITIONS or not all(i.isdigit() and len(i) <= 9 for i in items):
        raise InvalidMetadata("partitions: must be a comma-separated list of non-negative integers")
    return tuple(sorted({int(i) for i in items}))


def _timestamp(params: Mapping[str, Sequence[str]], name: str) -> datetime:
    value = _last(params, name)
    # An unencoded "+" of a UTC offset arrives as a space.
    value = _UNENCODED_OFFSET.sub(r"+\1", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidMetadata(f"{name}: not an ISO 8601 timestamp (got {value[:40]!r})") from None
    # A timestamp without an offset is taken as UTC, the only zone the pipeline uses.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
