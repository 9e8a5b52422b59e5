"""The reading endpoints: the index page (``GET /``), the JSON listing (``GET /api/reports``) and the
reports themselves (``GET|HEAD /reports/<id>``), each with the security headers its content needs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse

from streamwatch_profile_publisher.pages import IndexPage
from streamwatch_profile_publisher.publisher import Publisher

_READ_CHUNK = 256 * 1024
_MAX_LIMIT = 1000
_INDEX_HEADERS = {
    # The index page needs nothing but its own inline style.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none';"
    " form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_REPORT_HEADERS = {
    # Reports are self-contained HTML with inline scripts; the sandbox gives them an opaque origin
    # so a report can never act on this server's pages with the viewer's browser.
    "Content-Security-Policy": "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox"
    " allow-downloads allow-modals",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


class BrowseEndpoints:
    """What a reader (a person or a client) can get from the store, newest report first.

    Usage::

        browse = BrowseEndpoints(publisher, page_size=50)
        Route("/", browse.index_page, methods=["GET"])
    """

    def __init__(self, publisher: Publisher, page_size: int) -> None:
        self._publisher = publisher
        self._store = publisher.store
        self._page_size = page_size

    async def list_reports(self, request: Request) -> Response:
        limit = _int_param(request, "limit", self._page_size, 1, _MAX_LIMIT)
        offset = _int_param(request, "offset", 0, 0, 10**9)
        records, total = self._store.page(offset, limit)
        return JSONResponse(
            {"total": total, "offset": offset, "limit": limit, "reports": [r.to_json() for r in records]}
        )

    async def index_page(self, request: Request) -> Response:
        limit = _int_param(request, "limit", self._page_size, 1, _MAX_LIMIT)
        page = _int_param(request, "page", 1, 1, 10**6)
        records, total = self._store.page((page - 1) * limit, limit)
        _count, total_bytes = self._store.totals()
        previous = self._store.previous_of(records)
        view = IndexPage(records, total, total_bytes, page, limit, self._publisher.retention, previous)
        return HTMLResponse(view.render(), headers=_INDEX_HEADERS)

    async def report(self, request: Request) -> Response:
        opened = await run_in_threadpool(self._store.open_report, str(request.path_params["report_id"]))
        if opened is None:
            return PlainTextResponse("report not found\n", status_code=404)
        record, fd = opened
        handle = os.fdopen(fd, "rb")
        etag = f'"{record.sha256}"'
        headers = {
            **_REPORT_HEADERS,
            "Content-Length": str(os.fstat(fd).st_size),
            "ETag": etag,
        }
        media_type = f"text/html; charset={record.charset}"
        if request.method == "HEAD" or request.headers.get("if-none-match") == etag:
            handle.close()
            status = 304 if request.method != "HEAD" else 200
            if status == 304:
                del headers["Content-Length"]
            return Response(status_code=status, headers=headers, media_type=media_type)
        return StreamingResponse(_read_chunks(handle), headers=headers, media_type=media_type)


def _int_param(request: Request, name: str, default: int, lowest: int, highest: int) -> int:
    raw = request.query_params.get(name, "")
    value = int(raw) if raw.isdigit() and len(raw) < 10 else default
    return min(max(value, lowest), highest)


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(_READ_CHUNK):
            yield chunk
