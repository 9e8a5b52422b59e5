"""Retention by count, bytes and age removes the oldest reports, logs and counts it, de-indexes them."""

from __future__ import annotations

from collections.abc import Callable

from profile_publisher.publisher_client import Publisher, make_report, window_params

from streamwatch_dev.process import wait_until


def _upload_n(publisher: Publisher, n: int, size: int) -> list[str]:
    ids = []
    for i in range(n):
        response = publisher.upload(make_report(f"r{i}", size=size), window_params(5 * i, key=f"k{i}"))
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def test_retention_by_count_keeps_the_newest(start_publisher: Callable[..., Publisher]) -> None:
    publisher = start_publisher(PROFILE_PUBLISHER_RETENTION_MAX_REPORTS="3")
    ids = _upload_n(publisher, 5, size=3000)

    assert [r["id"] for r in publisher.reports()] == ids[:1:-1]
    for removed in ids[:2]:
        assert publisher.client.get(f"/reports/{removed}").status_code == 404
    for kept in ids[2:]:
        assert publisher.client.get(f"/reports/{kept}").status_code == 200
    assert publisher.stored_files() == sorted(f"{i}.{ext}" for i in ids[2:] for ext in ("html", "json"))
    assert publisher.metric("profile_publisher_retention_removals_total", reason="count") == 2
    assert publisher.metric("profile_publisher_reports") == 3
    removals = publisher.process.events("report_removed")
    assert [(e["report_id"], e["reason"]) for e in removals] == [(ids[0], "count"), (ids[1], "count")]
    # Removed reports leave the search index too, so a Grafana table never links to a 404.
    assert set(publisher.indexed_docs()) == set(ids[2:])


def test_retention_by_bytes_removes_oldest_first(start_publisher: Callable[..., Publisher]) -> None:
    size = 10_000
    publisher = start_publisher(
        search_enabled=False, PROFILE_PUBLISHER_RETENTION_MAX_BYTES=str(int(2.5 * size))
    )
    ids = _upload_n(publisher, 4, size=size)
    assert [r["id"] for r in publisher.reports()] == [ids[3], ids[2]]
    assert publisher.metric("profile_publisher_stored_bytes") == 2 * size
    assert publisher.metric("profile_publisher_retention_removals_total", reason="bytes") == 2

    # A report larger than the whole budget still stays (it is the newest), but pushes out the rest.
    big = publisher.upload(make_report("big", size=3 * size), window_params(60)).json()["id"]
    assert [r["id"] for r in publisher.reports()] == [big]
    assert publisher.metric("profile_publisher_retention_removals_total", reason="bytes") == 4


def test_retention_by_age_runs_in_the_background(start_publisher: Callable[..., Publisher]) -> None:
    publisher = start_publisher(
        search_enabled=False,
        PROFILE_PUBLISHER_RETENTION_MAX_AGE_DAYS=str(2 / 86400),  # two seconds
        PROFILE_PUBLISHER_RETENTION_INTERVAL_SECONDS="0.5",
    )
    (old,) = _upload_n(publisher, 1, size=2000)
    wait_until(lambda: publisher.reports() == [], 15, what="the aged report removed")
    assert publisher.stored_files() == []
    (event,) = publisher.process.events("report_removed")
    assert (event["report_id"], event["reason"]) == (old, "age")
    assert publisher.metric("profile_publisher_retention_removals_total", reason="age") == 1
