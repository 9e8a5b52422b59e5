"""The HTTP application: the upload API (:mod:`upload`), the index page, listing and reports
(:mod:`browse`), and the ops endpoints every service serves (``streamwatch_common.ops``), all on one port.

Usage::

    publisher = Publisher.from_settings(settings)
    app = build_app(settings, publisher)  # serve with uvicorn
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamwatch_common.ops import OPS_PATHS, Readiness, ops_answer
from streamwatch_profile_publisher.browse import BrowseEndpoints
from streamwatch_profile_publisher.publisher import Publisher
from streamwatch_profile_publisher.settings import ProfilePublisherSettings
from streamwatch_profile_publisher.upload import UploadEndpoint

logger = logging.getLogger(__name__)


def build_app(settings: ProfilePublisherSettings, publisher: Publisher) -> Starlette:
    """The ASGI app; its lifespan starts and stops the publisher, and with it readiness.

    Ready: the app is serving (between the lifespan's start and stop) and the store is writable.
    """
    readiness = Readiness()
    readiness.set("serving", False)
    readiness.check("store_writable", publisher.store.writable)
    upload = UploadEndpoint(
        publisher, settings.token.get_secret_value().encode("utf-8"), settings.max_report_bytes
    )
    browse = BrowseEndpoints(publisher, settings.page_size)
    routes = [
        Route("/", browse.index_page, methods=["GET"]),
        Route("/api/reports", browse.list_reports, methods=["GET"]),
        Route("/api/reports", upload.post, methods=["POST"]),
        Route("/reports/{report_id}", browse.report, methods=["GET", "HEAD"]),
        *ops_routes(readiness),
    ]
    return Starlette(routes=routes, lifespan=_lifespan(settings, publisher, readiness))


def ops_routes(ready: Callable[[], bool]) -> list[Route]:
    """``/healthz``, ``/readyz`` and ``/metrics`` as routes, answered by the shared :func:`ops_answer`."""

    async def ops(request: Request) -> Response:
        answer = ops_answer(request.url.path, ready)
        if answer is None:  # only routed for OPS_PATHS
            return Response(status_code=404)
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type)

    return [Route(path, ops, methods=["GET"]) for path in OPS_PATHS]


def _lifespan(
    settings: ProfilePublisherSettings, publisher: Publisher, readiness: Readiness
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[Any]]:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(publisher.start)
        readiness.set("serving", True)
        logger.info("http_server_started", extra={"host": settings.host, "port": settings.port})
        try:
            yield
        finally:
            readiness.set("serving", False)
            await run_in_threadpool(publisher.stop)
            logger.info("http_server_stopped")

    return lifespan
