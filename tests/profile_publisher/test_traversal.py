"""Report ids are the only way to a file: traversal and symlink tricks never serve anything else."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from profile_publisher.publisher_client import Publisher, make_report, window_params

SECRET = b"TOP-SECRET-outside-the-store"


def _assert_nothing_leaks(publisher: Publisher, paths: list[str]) -> None:
    for path in paths:
        status, body = publisher.raw_get(path)
        assert status in (400, 404), f"{path}: {status}"
        assert SECRET not in body, path
        assert b"root:" not in body, path


def test_traversal_attempts_never_leave_the_store(
    start_publisher: Callable[..., Publisher], output_dir: Path
) -> None:
    secret = output_dir / "secret.txt"
    secret.write_bytes(SECRET)
    publisher = start_publisher(store_dir=output_dir / "store")
    report_id = publisher.upload(make_report("legit"), window_params(0)).json()["id"]
    reports_dir = publisher.store_dir / "reports"
    relative_secret = os.path.relpath(secret, reports_dir)

    _assert_nothing_leaks(
        publisher,
        [
            f"/reports/{relative_secret}",
            "/reports/../secret.txt",
            "/reports/../../secret.txt",
            "/reports/..%2fsecret.txt",
            "/reports/..%2F..%2Fsecret.txt",
            "/reports/%2e%2e%2f%2e%2e%2fsecret.txt",
            "/reports/%252e%252e%252fsecret.txt",
            "/reports/..%5c..%5csecret.txt",
            "/reports/%2e%2e",
            "/reports/..",
            "/reports/.",
            f"/reports/{secret}",
            f"/reports/%2F{str(secret).lstrip('/').replace('/', '%2F')}",
            "/reports//etc/passwd",
            "/reports/%2Fetc%2Fpasswd",
            f"/reports/{report_id}/../../secret.txt",
            f"/reports/{report_id}%00",
            f"/reports/{report_id}%00.html",
            f"/reports/{report_id}.html",
            f"/reports/{report_id}.json",
            f"/reports/{report_id.upper()}",
            f"/reports/{report_id[:-1]}",
            f"/reports/{report_id}x",
            "/reports/0123456789abcdef0123456789abcdef",  # well-formed, unknown
            "/reports/",
            "/../secret.txt",
            "/%2e%2e/secret.txt",
        ],
    )
    # The sidecar of a real report is metadata, not a page: it is never served as one.
    status, body = publisher.raw_get(f"/reports/{report_id}")
    assert status == 200 and b"<h1 id='label'>legit</h1>" in body


def test_symlinks_in_the_store_are_never_followed(
    start_publisher: Callable[..., Publisher], output_dir: Path
) -> None:
    secret = output_dir / "secret.txt"
    secret.write_bytes(SECRET)
    store = output_dir / "store"
    publisher = start_publisher(store_dir=store)
    victim = publisher.upload(make_report("victim"), window_params(0)).json()["id"]
    reports_dir = store / "reports"

    # A planted report whose file is a symlink, with a plausible sidecar copied from a real one.
    planted = "f" * 32
    sidecar = json.loads((reports_dir / f"{victim}.json").read_text())
    sidecar["id"] = planted
    (reports_dir / f"{planted}.json").write_text(json.dumps(sidecar))
    (reports_dir / f"{planted}.html").symlink_to(secret)
    # A real report's file swapped for a symlink while the service runs.
    (reports_dir / f"{victim}.html").unlink()
    (reports_dir / f"{victim}.html").symlink_to(secret)

    _assert_nothing_leaks(publisher, [f"/reports/{planted}", f"/reports/{victim}"])
    assert publisher.metric("profile_publisher_storage_errors_total", operation="read") == 1

    # After a restart the store is rescanned: symlinks are still refused, and never deleted blindly.
    publisher.stop()
    restarted = start_publisher(store_dir=store)
    _assert_nothing_leaks(restarted, [f"/reports/{planted}", f"/reports/{victim}"])
    assert {r["id"] for r in restarted.reports()} == set()
    assert len(restarted.process.events("store_entry_not_regular_file")) == 2
    assert secret.read_bytes() == SECRET
