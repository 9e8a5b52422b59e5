"""Entry point of the profile publisher: ``streamwatch-profile-publisher``."""

from __future__ import annotations

import logging

from streamwatch_common.service import start_service
from streamwatch_profile_publisher.settings import ProfilePublisherSettings

logger = logging.getLogger(__name__)


def main() -> None:
    """Load settings, then serve the API, the index page and the reports until SIGTERM."""
    _settings, _shutdown = start_service("profile-publisher", ProfilePublisherSettings)
    logger.info("service_stopped")


if __name__ == "__main__":
    main()
