"""The HTTP application: upload API, index page, report pages, JSON listing, probes and metrics.

Usage::

    publisher = Publisher.from_settings(settings)
    app = build_app(settings, publisher)  # serve with uvicorn
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import BinaryIO

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from streamwatch_profile_publisher.metadata import InvalidMetadata, MissingMetadata, UploadMetadata
from streamwatch_profile_publisher.metrics import REJECTS, STORAGE_ERRORS, UPLOAD_SECONDS
from streamwatch_profile_publisher.pages import IndexPage
from streamwatch_profile_publisher.publisher import Publisher
from streamwatch_profile_publisher.settings import ProfilePublisherSettings

logger = logging.getLogger(__name__)

_CHARSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}$")
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


def _reject(status: int, reason: str, detail: str, request: Request) -> JSONResponse:
    REJECTS.labels(reason=reason).inc()
    logger.warning(
        "upload_rejected",
        extra={
            "reason": reason,
            "status": status,
            "detail": detail,
            "client": request.client.host if request.client else None,
            "job": request.query_params.get("job"),
            "replica": request.query_params.get("replica"),
        },
    )
    headers = {"WWW-Authenticate": 'Bearer realm="profile-publisher"'} if status == 401 else None
    return JSONResponse({"error": reason, "detail": detail}, status_code=status, headers=headers)


def _storage_failed(operation: str, metadata: UploadMetadata, exc: OSError) -> JSONResponse:
    """A server-side failure (disk full, volume gone): 500, so the client retries later."""
    STORAGE_ERRORS.labels(operation=operation).inc()
    logger.error(
        "report_store_failed",
        extra={"operation": operation, "job": metadata.job, "replica": metadata.replica, "error": repr(exc)},
    )
    return JSONResponse({"error": "storage_failed", "detail": "the report could not be stored"}, 500)


def _content_type(header: str | None) -> tuple[str, str | None]:
    """Media type and charset (``utf-8`` when not given; None when the charset is unusable)."""
    media_type, *params = (header or "").split(";")
    charset = "utf-8"
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            value = value.strip().strip('"')
            charset = value.lower() if _CHARSET.match(value) else ""
    return media_type.strip().lower(), charset or None


def _int_param(request: Request, name: str, default: int, lowest: int, highest: int) -> int:
    raw = request.query_params.get(name, "")
    value = int(raw) if raw.isdigit() and len(raw) < 10 else default
    return min(max(value, lowest), highest)


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(_READ_CHUNK):
            yield chunk


def build_app(settings: ProfilePublisherSettings, publisher: Publisher) -> Starlette:
    """The ASGI app; its lifespan starts and stops the publisher's background work."""
    token = settings.token.get_secret_value().encode("utf-8")
    max_bytes = settings.max_report_bytes
    store = publisher.store
    ready = {"serving": False}

    async def upload(request: Request) -> Response:
        started = time.perf_counter()
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return _reject(401, "unauthorized", "a bearer token is required", request)
        if not hmac.compare_digest(presented.strip().encode("utf-8"), token):
            return _reject(403, "forbidden", "the bearer token is not accepted", request)
        media_type, charset = _content_type(request.headers.get("content-type"))
        if media_type != "text/html" or charset is None:
            return _reject(415, "unsupported_media_type", "send the report as text/html", request)
        params = {name: request.query_params.getlist(name) for name in request.query_params}
        try:
            metadata = UploadMetadata.from_query(params)
        except MissingMetadata as exc:
            return _reject(400, "missing_metadata", str(exc), request)
        except InvalidMetadata as exc:
            return _reject(422, "invalid_metadata", str(exc), request)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return _reject(413, "too_large", f"the limit is {max_bytes} bytes", request)

        # The body goes straight to a temporary file in the store, never whole into memory; the limit
        # is enforced while it streams, whatever Content-Length said (or if it said nothing).
        try:
            pending = await run_in_threadpool(store.new_upload)
        except OSError as exc:
            return _storage_failed("receive", metadata, exc)
        try:
            async for chunk in request.stream():
                if pending.size + len(chunk) > max_bytes:
                    pending.discard()
                    return _reject(413, "too_large", f"the limit is {max_bytes} bytes", request)
                pending.write(chunk)
        except ClientDisconnect:
            pending.discard()
            return _reject(400, "client_disconnected", "the body ended before it was complete", request)
        except OSError as exc:
            pending.discard()
            return _storage_failed("receive", metadata, exc)
        except BaseException:
            pending.discard()
            raise
        if pending.size == 0:
            pending.discard()
            return _reject(400, "empty", "the report body is empty", request)
        try:
            record, created = await run_in_threadpool(publisher.publish, pending, metadata, charset)
        except OSError as exc:
            pending.discard()
            return _storage_failed("commit", metadata, exc)
        UPLOAD_SECONDS.observe(time.perf_counter() - started)
        return JSONResponse(
            {"id": record.id, "url": record.url},
            status_code=201 if created else 200,
            headers={"Location": record.url},
        )

    async def list_reports(request: Request) -> Response:
        limit = _int_param(request, "limit", settings.page_size, 1, _MAX_LIMIT)
        offset = _int_param(request, "offset", 0, 0, 10**9)
        records, total = store.page(offset, limit)
        return JSONResponse(
            {"total": total, "offset": offset, "limit": limit, "reports": [r.to_json() for r in records]}
        )

    async def index_page(request: Request) -> Response:
        limit = _int_param(request, "limit", settings.page_size, 1, _MAX_LIMIT)
        page = _int_param(request, "page", 1, 1, 10**6)
        records, total = store.page((page - 1) * limit, limit)
        _count, total_bytes = store.totals()
        previous = store.previous_of(records)
        view = IndexPage(records, total, total_bytes, page, limit, publisher.retention, previous)
        return HTMLResponse(view.render(), headers=_INDEX_HEADERS)

    async def report(request: Request) -> Response:
        opened = await run_in_threadpool(store.open_report, str(request.path_params["report_id"]))
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

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_request: Request) -> Response:
        ok = ready["serving"] and store.writable()
        return PlainTextResponse("ready\n" if ok else "not ready\n", status_code=200 if ok else 503)

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def sweep_retention() -> None:
        # Count and bytes are applied on every upload; age also needs the clock to move.
        while True:
            await asyncio.sleep(settings.retention_interval_seconds)
            try:
                await run_in_threadpool(publisher.enforce_retention)
            except Exception:
                STORAGE_ERRORS.labels(operation="retention").inc()
                logger.exception("retention_sweep_failed")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(publisher.start)
        sweeper = asyncio.create_task(sweep_retention())
        ready["serving"] = True
        logger.info("http_server_started", extra={"host": settings.host, "port": settings.port})
        try:
            yield
        finally:
            ready["serving"] = False
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await run_in_threadpool(publisher.stop)
            logger.info("http_server_stopped")

    routes = [
        Route("/", index_page, methods=["GET"]),
        Route("/api/reports", list_reports, methods=["GET"]),
        Route("/api/reports", upload, methods=["POST"]),
        Route("/reports/{report_id}", report, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
