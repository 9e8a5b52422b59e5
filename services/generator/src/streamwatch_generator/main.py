"""Entry point of the generator: ``streamwatch-generator``."""

from __future__ import annotations

from streamwatch_common.service import start_service
from streamwatch_generator.settings import GeneratorSettings


def main() -> None:
    """Produce synthetic visits until the total is reached or SIGTERM arrives."""
    start_service("generator", GeneratorSettings)


if __name__ == "__main__":
    main()
