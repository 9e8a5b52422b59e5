"""Entry point of the visits writer: ``streamwatch-visits-writer [create-tables]``."""

from __future__ import annotations

from streamwatch_common.service import start_service
from streamwatch_visits_writer.settings import VisitsWriterSettings


def main() -> None:
    """Run the streaming job (default) or create the tables (``create-tables``)."""
    start_service("visits-writer", VisitsWriterSettings)


if __name__ == "__main__":
    main()
