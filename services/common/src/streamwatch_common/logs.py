"""Structured logging, configured once per process.

``logger.info("window_written", extra={"partition": 1, "records": 500})`` becomes one line
``{"ts": ..., "level": "INFO", "service": "observer", "event": "window_written", "partition": 1, ...}``.
The message is the event name; everything passed in ``extra`` becomes a field.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from streamwatch_common.redact import redact, redact_text

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's own fields, with secret values masked (see ``redact``). A field's own name is chosen
    by our code (a profile's ``key`` is no secret); the names inside its values come from user settings."""
    return {
        k: redact(v) for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``service``, ``event``, ``logger`` and the fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "event": redact_text(record.getMessage()),
            "logger": record.name,
        }
        for key, value in _fields(record).items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(doc, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """Human-readable: time, level, event, then ``key=value`` fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, tz=UTC).strftime("%H:%M:%S.%f")[:-3]
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{ts} {record.levelname:<7} {self.service} {record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + redact_text(self.formatException(record.exc_info))
        return line


def configure_logging(service: str, log_format: str = "json", level: str = "INFO") -> None:
    """Send every log record of the process to stdout in the chosen format; safe to call twice."""
    handler = logging.StreamHandler(sys.stdout)
    formatter: logging.Formatter = (
        ConsoleFormatter(service) if log_format == "console" else JsonFormatter(service)
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # A thread that dies of an exception (ours or a library's) is one log line like every other, not a
    # bare traceback on stderr.
    threading.excepthook = _log_thread_exception
    # Chatty libraries: keep their warnings, drop their debug chatter.
    for noisy in ("py4j", "urllib3", "elastic_transport", "httpx", "uvicorn.access", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "unknown"
    logging.getLogger(__name__).error(
        "thread_crashed",
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        extra={"thread_name": thread},
    )
