"""The first lines of every service's ``main()``: settings, then logging, then signals."""

from __future__ import annotations

import logging
from typing import TypeVar

from streamwatch_common.logs import configure_logging
from streamwatch_common.settings import ServiceSettings, load_settings
from streamwatch_common.shutdown import GracefulShutdown

S = TypeVar("S", bound=ServiceSettings)

logger = logging.getLogger(__name__)


def start_service(service: str, settings_cls: type[S]) -> tuple[S, GracefulShutdown]:
    """Load settings (exit 2 on a bad one), configure logging, install signal handlers."""
    settings = load_settings(settings_cls)
    configure_logging(service, settings.log_format, settings.log_level)
    shutdown = GracefulShutdown().install()
    logger.info("service_starting", extra={"settings": settings.model_dump(mode="json")})
    return settings, shutdown
