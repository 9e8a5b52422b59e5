"""Fixtures for the common library's tests: a clean environment, restored logging and signal handlers."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No KAFKA_*, LOG_*, OPS_*, ELASTICSEARCH_* or DEMO_* variables from the outer environment."""
    for name in list(os.environ):
        if name.startswith(("KAFKA_", "LOG_", "OPS_", "ELASTICSEARCH_", "DEMO_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Tests that configure logging leave the root logger as they found it."""
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, threading.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    threading.excepthook = hook


@pytest.fixture
def restore_signals() -> Iterator[None]:
    """Tests that install signal handlers put the previous ones back."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)
