"""Entry point of ``streamwatch-passthrough``."""

from __future__ import annotations

from streamwatch_common.service import start_service
from streamwatch_passthrough.settings import PassthroughSettings


def main() -> None:
    """Copy the source topic to the target topic until SIGTERM."""
    settings, shutdown = start_service("passthrough", PassthroughSettings)
    from streamwatch_passthrough.job import run

    raise SystemExit(run(settings, shutdown))
