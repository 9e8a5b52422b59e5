"""Entry point of the visits writer.

``streamwatch-visits-writer``: run the streaming job (Kafka ``visits`` → Delta).
``streamwatch-visits-writer create-tables``: create the visits and dead-letter tables and exit
(0: created or already there with the right schema; 1: an existing table has an incompatible schema, or
its store cannot be reached).
"""

from __future__ import annotations

import sys

from streamwatch_common.service import start_service
from streamwatch_visits_writer.settings import VisitsWriterSettings

COMMANDS = ("run", "create-tables")


def main(argv: list[str] | None = None) -> None:
    """Run the streaming job (default) or create the tables (``create-tables``)."""
    settings, shutdown = start_service("visits-writer", VisitsWriterSettings)
    from streamwatch_visits_writer.job import create_tables_command, run

    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "run"
    if command not in COMMANDS or len(args) > 1:
        print(f"usage: streamwatch-visits-writer [{'|'.join(COMMANDS)}]", file=sys.stderr)
        raise SystemExit(2)
    if command == "create-tables":
        raise SystemExit(create_tables_command(settings))
    raise SystemExit(run(settings, shutdown))


if __name__ == "__main__":
    main()
