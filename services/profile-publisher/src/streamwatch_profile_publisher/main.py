"""Entry point of the profile publisher: ``streamwatch-profile-publisher``."""

from __future__ import annotations

import logging

import uvicorn

from streamwatch_common.service import fatal_errors, start_service
from streamwatch_profile_publisher.app import build_app
from streamwatch_profile_publisher.publisher import Publisher
from streamwatch_profile_publisher.settings import ProfilePublisherSettings
from streamwatch_profile_publisher.store import StoreError

logger = logging.getLogger(__name__)


def main() -> None:
    """Load settings, open the store, then serve until SIGTERM; in-flight uploads finish first."""
    settings, _shutdown = start_service("profile-publisher", ProfilePublisherSettings)
    with fatal_errors("profile_publisher_failed"):
        _serve(settings)


def _serve(settings: ProfilePublisherSettings) -> None:
    """Open the store (exit 1 when it cannot be), then serve until SIGTERM."""
    try:
        publisher = Publisher.from_settings(settings)
    except StoreError as exc:
        logger.error("store_unavailable", extra={"error": str(exc)})
        raise SystemExit(1) from exc
    # uvicorn's own lines are free text; the service logs its own snake_case events instead.
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, logging.getLogger().level))
    # uvicorn catches SIGTERM itself: it stops accepting, waits for open requests up to the timeout,
    # runs the lifespan shutdown, then re-raises the signal to the handlers installed before it.
    config = uvicorn.Config(
        build_app(settings, publisher),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
    )
    uvicorn.Server(config).run()
    logger.info("service_stopped")


if __name__ == "__main__":
    main()
