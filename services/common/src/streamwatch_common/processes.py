"""Whether a process still runs, read from ``/proc`` (Linux)."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def alive(pid: int) -> bool:
    """True while ``pid`` runs. An exited process its parent has not reaped yet is a zombie, which a
    signal 0 would still find: it counts as gone."""
    try:
        status = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False  # reaped
    return status.rpartition(")")[2].split()[0] != "Z"
