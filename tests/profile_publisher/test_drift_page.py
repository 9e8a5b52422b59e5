"""Each report's drift against the previous report of the same partitions, on the index page (in process:
the real store on a temporary directory, the real page template; no server needed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streamwatch_profile_publisher.metadata import InvalidMetadata, ReportRecord, UploadMetadata
from streamwatch_profile_publisher.pages import IndexPage
from streamwatch_profile_publisher.retention import RetentionPolicy
from streamwatch_profile_publisher.store import ReportStore

_START = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)


def _params(minute: int, partitions: str, **extra: str) -> dict[str, list[str]]:
    start = _START + timedelta(minutes=minute)
    params = {
        "job": "passthrough",
        "partitions": partitions,
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(minutes=1)).isoformat(),
        "rows": "500",
        "replica": "observer-0",
        "key": f"passthrough_p{partitions}_{minute}",
        **extra,
    }
    return {name: [value] for name, value in params.items()}


def _upload(store: ReportStore, params: dict[str, list[str]]) -> ReportRecord:
    pending = store.new_upload()
    pending.write(b"<html><body>report</body></html>")
    record, _created = store.commit(pending, UploadMetadata.from_query(params), "utf-8")
    return record


def test_drift_metadata_is_optional_and_validated() -> None:
    plain = UploadMetadata.from_query(_params(0, "0"))
    assert (plain.drift_field, plain.drift_max) == (None, None)
    scored = UploadMetadata.from_query(_params(0, "0", drift_field="page", drift_max="0.4412"))
    assert (scored.drift_field, scored.drift_max) == ("page", 0.4412)
    with pytest.raises(InvalidMetadata, match="drift_max"):
        UploadMetadata.from_query(_params(0, "0", drift_field="page", drift_max="1.5"))
    with pytest.raises(InvalidMetadata, match="drift_max"):
        UploadMetadata.from_query(_params(0, "0", drift_max="high"))


def test_page_shows_each_reports_drift_and_links_the_previous_report_of_its_partitions(
    tmp_path: Path,
) -> None:
    store = ReportStore(tmp_path).open()
    first0 = _upload(store, _params(0, "0"))
    first1 = _upload(store, _params(0, "1"))
    second0 = _upload(store, _params(1, "0", drift_field="page", drift_max="0.4412"))
    second1 = _upload(store, _params(1, "1", drift_field="user_id", drift_max="0.0311"))

    previous = store.previous_of([second0, second1, first0])
    assert previous[second0.id].id == first0.id and previous[second1.id].id == first1.id
    assert first0.id not in previous  # the first window of a partition has no reference

    records, total = store.page(0, 10)
    html = IndexPage(records, total, 0, 1, 10, RetentionPolicy(), store.previous_of(records)).render()
    rows = {m.group(1): m.group(2) for m in re.finditer(r'data-report-id="(\w+)">(.*?)</tr>', html, re.S)}
    assert "0.44" in rows[second0.id] and "page" in rows[second0.id]
    assert f'href="/reports/{first0.id}"' in rows[second0.id]
    assert f'href="/reports/{first1.id}"' in rows[second1.id] and "0.03" in rows[second1.id]
    assert "no score" in rows[first0.id] and "previous-link" not in rows[first0.id]

    # The drift survives a restart: it is in the sidecar.
    reopened = ReportStore(tmp_path).open()
    stored = reopened.get(second0.id)
    assert stored is not None and (stored.drift_field, stored.drift_max) == ("page", 0.4412)
