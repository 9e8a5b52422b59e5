"""Where finished profile reports go: the profile publisher (HTTP, bounded retries) or a directory."""

from __future__ import annotations

import logging
import time
from datetime import UTC
from pathlib import Path
from typing import Protocol
from urllib.parse import urljoin

import httpx

from streamwatch_common.backoff import Backoff
from streamwatch_common.errors import StreamwatchError
from streamwatch_observer.report import ProfileRequest

logger = logging.getLogger(__name__)

_MAX_BACKOFF = 30.0


class ProfileDeliveryError(StreamwatchError):
    """A profile report could not be delivered after its retries."""


class Destination(Protocol):
    """Where finished reports go."""

    name: str

    def deliver(self, request: ProfileRequest, html: str) -> str: ...


class DirectoryDestination:
    """Writes reports as files (written to a temporary name, then renamed: readers never see half)."""

    name = "directory"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def deliver(self, request: ProfileRequest, html: str) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / request.file_name
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(path)
        return str(path)


class PublisherDestination:
    """POSTs reports to the profile publisher with bounded retries and back-off."""

    name = "publisher"

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        replica: str,
        retries: int,
        timeout: float,
        backoff: float = 1.0,
    ) -> None:
        self.base_url = url.rstrip("/")
        self.url = self.base_url + "/api/reports"
        self.replica = replica
        self.retries = retries
        self.backoff = backoff
        headers = {"Content-Type": "text/html; charset=utf-8"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(headers=headers, timeout=timeout)

    def deliver(self, request: ProfileRequest, html: str) -> str:
        params = {
            "job": request.job,
            "partitions": ",".join(str(p) for p in request.partitions),
            "window_start": request.window_start.astimezone(UTC).isoformat(),
            "window_end": request.window_end.astimezone(UTC).isoformat(),
            "rows": str(len(request.rows)),
            "replica": self.replica,
            "key": request.key,
        }
        if request.drift_max is not None:  # the publisher shows it next to the previous report
            params["drift_field"], score = request.drift_max
            params["drift_max"] = f"{score:.4f}"
        body = html.encode("utf-8")
        last = ""
        backoff = Backoff(first=self.backoff, maximum=_MAX_BACKOFF)
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(backoff.next_delay())
            try:
                response = self._client.post(self.url, params=params, content=body)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in (200, 201):
                    # The publisher may answer with a path; make it a link that works from anywhere.
                    return urljoin(self.base_url + "/", str(response.json().get("url", "")))
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the request itself is wrong; repeating it cannot help
            logger.warning(
                "profile_delivery_retry", extra={"key": request.key, "attempt": attempt + 1, "error": last}
            )
        raise ProfileDeliveryError(f"profile {request.key}: {last}")
