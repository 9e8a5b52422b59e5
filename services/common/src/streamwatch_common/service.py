"""The first lines of every service's ``main()``: settings, then logging, then signals; and its last
line: a fatal error ends as one log line and a non-zero exit, never a bare traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from streamwatch_common.logs import configure_logging
from streamwatch_common.settings import ServiceSettings, load_settings
from streamwatch_common.shutdown import GracefulShutdown

S = TypeVar("S", bound=ServiceSettings)

EXIT_FAILED = 1

logger = logging.getLogger(__name__)


def start_service(service: str, settings_cls: type[S]) -> tuple[S, GracefulShutdown]:
    """Load settings (exit 2 on a bad one), configure logging, install signal handlers."""
    settings = load_settings(settings_cls)
    configure_logging(service, settings.log_format, settings.log_level)
    shutdown = GracefulShutdown().install()
    logger.info("service_starting", extra={"settings": settings.model_dump(mode="json")})
    return settings, shutdown


@contextmanager
def fatal_errors(event: str) -> Iterator[None]:
    """Turn an unexpected exception into one log line named ``event`` (traceback inside it) and exit
    code 1, so the orchestrator restarts the pod and the log stays one JSON object per line.

    Usage::

        settings, shutdown = start_service("observer", ObserverSettings)
        with fatal_errors("observer_failed"):
            run(settings, shutdown)

    A ``SystemExit`` raised on purpose (a chosen exit code) passes through unchanged.
    """
    try:
        yield
    except Exception as exc:
        logger.exception(event, extra={"error": f"{type(exc).__name__}: {exc}"})
        raise SystemExit(EXIT_FAILED) from None
