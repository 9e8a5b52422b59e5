"""Refused uploads: the right 4xx, counted by reason, and nothing stored or indexed for any of them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from profile_publisher.publisher_client import Publisher, make_report, window_params

from streamwatch_dev.services import VENV_BIN, service_env

LIMIT = 64 * 1024


def _slow_chunks(total: int, chunk: int = 16 * 1024) -> Iterator[bytes]:
    """A body without Content-Length (chunked), so only the streaming check can catch it."""
    sent = 0
    while sent < total:
        yield b"x" * min(chunk, total - sent)
        sent += chunk
        time.sleep(0.01)


def test_refused_uploads_store_nothing(start_publisher: Callable[..., Publisher]) -> None:
    publisher = start_publisher(PROFILE_PUBLISHER_MAX_REPORT_BYTES=str(LIMIT))
    body = make_report("refused")
    params = window_params(0, key="refused")
    cases = [
        ("no token", publisher.upload(body, params, token=None), 401, "unauthorized"),
        (
            "basic auth",
            publisher.client.post(
                "/api/reports",
                params=params,
                content=body,
                headers={"Authorization": "Basic dXNlcjpwYXNz", "Content-Type": "text/html"},
            ),
            401,
            "unauthorized",
        ),
        ("wrong token", publisher.upload(body, params, token="not-the-token"), 403, "forbidden"),
        ("token prefix", publisher.upload(body, params, token=publisher.token[:-1]), 403, "forbidden"),
        (
            "json",
            publisher.upload(body, params, content_type="application/json"),
            415,
            "unsupported_media_type",
        ),
        ("plain", publisher.upload(body, params, content_type="text/plain"), 415, "unsupported_media_type"),
        ("no type", publisher.upload(body, params, content_type=None), 415, "unsupported_media_type"),
        (
            "bad charset",
            publisher.upload(body, params, content_type='text/html; charset="x y<z>"'),
            415,
            "unsupported_media_type",
        ),
        ("no job", publisher.upload(body, window_params(0, job=None)), 400, "missing_metadata"),
        ("no window", publisher.upload(body, window_params(0, window_end=None)), 400, "missing_metadata"),
        ("negative rows", publisher.upload(body, window_params(0, rows=-1)), 422, "invalid_metadata"),
        (
            "bad partitions",
            publisher.upload(body, window_params(0, partitions="0,a")),
            422,
            "invalid_metadata",
        ),
        (
            "bad time",
            publisher.upload(body, window_params(0, window_start="yesterday")),
            422,
            "invalid_metadata",
        ),
        (
            "reversed window",
            publisher.upload(body, window_params(0, window_start="2026-11-22T19:00:00Z")),
            422,
            "invalid_metadata",
        ),
        ("oversize", publisher.upload(b"x" * (LIMIT + 1), params), 413, "too_large"),
        ("oversize chunked", publisher.upload(_slow_chunks(4 * LIMIT), params), 413, "too_large"),
        ("empty", publisher.upload(b"", params), 400, "empty"),
    ]
    for name, response, status, reason in cases:
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        assert response.json()["error"] == reason, name
    assert cases[0][1].headers["www-authenticate"].startswith("Bearer")

    assert publisher.stored_files() == [], "no file of a refused upload may stay in the store"
    assert publisher.reports() == []
    expected = {
        "unauthorized": 2,
        "forbidden": 2,
        "unsupported_media_type": 4,
        "missing_metadata": 2,
        "invalid_metadata": 4,
        "too_large": 2,
        "empty": 1,
    }
    for reason, count in expected.items():
        assert publisher.metric("profile_publisher_rejects_total", reason=reason) == count, reason
    assert publisher.metric("profile_publisher_uploads_total", result="created") == 0
    rejected = publisher.process.events("upload_rejected")
    assert len(rejected) == sum(expected.values())
    assert all(publisher.token not in str(r) for r in rejected), "the token is never logged"

    # Exactly at the limit is accepted: the limit is inclusive and counted on the real body.
    at_limit = publisher.upload(b"y" * LIMIT, params)
    assert at_limit.status_code == 201
    assert publisher.client.get(at_limit.json()["url"]).content == b"y" * LIMIT
    assert len(publisher.stored_files()) == 2  # the report and its metadata
    assert publisher.process.running


def test_missing_token_setting_stops_with_exit_2(tmp_path: Path) -> None:
    env = service_env(PROFILE_PUBLISHER_STORE_DIR=str(tmp_path))
    env.pop("PROFILE_PUBLISHER_TOKEN", None)
    result = subprocess.run(
        [str(VENV_BIN / "streamwatch-profile-publisher")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: PROFILE_PUBLISHER_TOKEN: required but not set"
    ]
