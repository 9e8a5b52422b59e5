"""The upload endpoint, ``POST /api/reports``: who may upload, what is accepted, and the body streamed
into the store under its size limit.

Every refusal is answered, logged and counted by reason; a failure on the server's side (disk full,
volume gone) answers 500 so the client retries later.
"""

from __future__ import annotations

import hmac
import logging
import re
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from streamwatch_profile_publisher.files import PendingUpload
from streamwatch_profile_publisher.metadata import InvalidMetadata, MissingMetadata, UploadMetadata
from streamwatch_profile_publisher.metrics import REJECTS, STORAGE_ERRORS, UPLOAD_SECONDS
from streamwatch_profile_publisher.publisher import Publisher

logger = logging.getLogger(__name__)

_CHARSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}$")


class UploadEndpoint:
    """Checks an upload's token, media type, metadata and size, then hands the report to the publisher.

    Usage::

        Route("/api/reports", UploadEndpoint(publisher, token, max_bytes).post, methods=["POST"])
    """

    def __init__(self, publisher: Publisher, token: bytes, max_bytes: int) -> None:
        self._publisher = publisher
        self._token = token
        self._max_bytes = max_bytes

    async def post(self, request: Request) -> Response:
        started = time.perf_counter()
        accepted = self._accept(request)
        if isinstance(accepted, Response):
            return accepted
        metadata, charset = accepted
        # The body goes straight to a temporary file in the store, never whole into memory.
        try:
            pending = await run_in_threadpool(self._publisher.store.new_upload)
        except OSError as exc:
            return _storage_failed("receive", metadata, exc)
        refused = await self._receive(request, pending, metadata)
        if refused is not None:
            pending.discard()
            return refused
        try:
            record, created = await run_in_threadpool(self._publisher.publish, pending, metadata, charset)
        except OSError as exc:
            pending.discard()
            return _storage_failed("commit", metadata, exc)
        UPLOAD_SECONDS.observe(time.perf_counter() - started)
        return JSONResponse(
            {"id": record.id, "url": record.url},
            status_code=201 if created else 200,
            headers={"Location": record.url},
        )

    def _accept(self, request: Request) -> Response | tuple[UploadMetadata, str]:
        """The upload's metadata and charset, or the refusal of everything but its body."""
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return _reject(401, "unauthorized", "a bearer token is required", request)
        if not hmac.compare_digest(presented.strip().encode("utf-8"), self._token):
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
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            return self._too_large(request)
        return metadata, charset

    async def _receive(
        self, request: Request, pending: PendingUpload, metadata: UploadMetadata
    ) -> Response | None:
        """Stream the body into ``pending``; the refusal when it cannot be kept (the caller discards).

        The limit is enforced while the body streams, whatever Content-Length said (or if it said
        nothing).
        """
        try:
            async for chunk in request.stream():
                if pending.size + len(chunk) > self._max_bytes:
                    return self._too_large(request)
                pending.write(chunk)
        except ClientDisconnect:
            return _reject(400, "client_disconnected", "the body ended before it was complete", request)
        except OSError as exc:
            return _storage_failed("receive", metadata, exc)
        except BaseException:
            pending.discard()
            raise
        if pending.size == 0:
            return _reject(400, "empty", "the report body is empty", request)
        return None

    def _too_large(self, request: Request) -> JSONResponse:
        return _reject(413, "too_large", f"the limit is {self._max_bytes} bytes", request)


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
