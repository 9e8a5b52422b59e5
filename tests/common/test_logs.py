"""Structured logging: JSON lines with the required keys, or a console line for humans."""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import UTC, datetime

import pytest

from streamwatch_common.logs import configure_logging

pytestmark = pytest.mark.usefixtures("restore_logging")

logger = logging.getLogger("streamwatch_tests.logs")


def test_json_line_has_required_keys_and_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("observer", "json", "INFO")
    logger.info(
        "window_written",
        extra={"partition": 1, "when": datetime(2026, 1, 1, tzinfo=UTC), "level": "overridden?"},
    )
    (line,) = capsys.readouterr().out.splitlines()
    doc = json.loads(line)
    assert doc["event"] == "window_written"
    assert doc["service"] == "observer"
    assert doc["level"] == "INFO"  # a field cannot overwrite a required key
    assert doc["partition"] == 1
    assert doc["when"] == "2026-01-01 00:00:00+00:00"  # not JSON-native: written as text, not dropped
    assert datetime.fromisoformat(doc["ts"]).tzinfo is not None


def test_exceptions_stay_on_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("observer", "json", "INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("write_failed", extra={"index": "x"})
    (line,) = capsys.readouterr().out.splitlines()
    doc = json.loads(line)
    assert doc["level"] == "ERROR"
    assert "ValueError: boom" in doc["exception"]


def test_console_format_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("generator", "console", "INFO")
    logger.warning("topic_not_available", extra={"topic": "visits", "partitions": 3})
    (line,) = capsys.readouterr().out.splitlines()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} WARNING generator topic_not_available topic=visits partitions=3", line
    ), line


def test_level_filters_and_reconfiguring_does_not_duplicate(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("generator", "json", "INFO")
    configure_logging("generator", "json", "WARNING")
    logger.info("hidden")
    logger.warning("shown")
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["shown"]


def test_a_thread_that_dies_of_an_exception_is_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Not a bare traceback on stderr (a library's thread, e.g. a process pool's manager, included)."""
    configure_logging("observer", "json", "INFO")

    def crash() -> None:
        raise TypeError("object of type 'NoneType' has no len()")

    thread = threading.Thread(target=crash, name="pool-manager")
    thread.start()
    thread.join()
    captured = capsys.readouterr()
    assert captured.err == ""
    (line,) = captured.out.splitlines()
    doc = json.loads(line)
    assert (doc["event"], doc["level"], doc["thread_name"]) == ("thread_crashed", "ERROR", "pool-manager")
    assert "TypeError" in json.dumps(doc)
