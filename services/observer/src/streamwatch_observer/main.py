"""Entry point of the observer: ``streamwatch-observer``."""

from __future__ import annotations

from streamwatch_common.service import start_service
from streamwatch_observer.settings import ObserverSettings


def main() -> None:
    """Observe ``processed_visits`` per window until SIGTERM arrives."""
    start_service("observer", ObserverSettings)


if __name__ == "__main__":
    main()
