"""Entry point of the generator: ``streamwatch-generator``."""

from __future__ import annotations

import logging
import sys

from streamwatch_common.errors import ConfigurationError
from streamwatch_common.ops import OpsServer
from streamwatch_common.service import start_service
from streamwatch_common.settings import EXIT_BAD_SETTINGS
from streamwatch_generator.run import VisitsGenerator
from streamwatch_generator.settings import GeneratorSettings

logger = logging.getLogger(__name__)


def main() -> None:
    """Produce synthetic visits until the total is reached or SIGTERM arrives."""
    settings, shutdown = start_service("generator", GeneratorSettings)
    generator = VisitsGenerator(settings, shutdown)
    ops = OpsServer(settings.ops_host, settings.ops_port, ready=generator.ready).start()
    try:
        code = generator.run()
    except ConfigurationError as exc:
        # Only known once the topic's metadata is in (e.g. a skew partition the topic does not have).
        logger.error("configuration_error", extra={"error": str(exc)})
        print(f"configuration error: {exc}", file=sys.stderr, flush=True)
        code = EXIT_BAD_SETTINGS
    except Exception:
        # Unexpected: still one JSON line with the traceback, and a non-zero exit for the orchestrator.
        logger.exception("generator_failed")
        code = 1
    finally:
        ops.stop()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
