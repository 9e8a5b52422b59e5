"""What a profile report is made of and how it is built: the request (rows, offset ranges, a
deterministic key) and the HTML from ydata-profiling in minimal mode.

``build_html`` and ``warm_up`` run in the profiler's worker process (see ``profiler``); the process
imports this module, so the environment below is set there before ydata-profiling is imported.
"""

from __future__ import annotations

import os

# Before ydata-profiling is imported anywhere in the process: no phoning home, no display needed.
os.environ.setdefault("YDATA_PROFILING_NO_ANALYTICS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# ydata-profiling draws tqdm bars on stderr, which would break the one-JSON-object-per-line logs.
os.environ.setdefault("TQDM_DISABLE", "1")

import ctypes
import gc
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# ydata-profiling's own limit between categorical and free text (vars.cat.cardinality_threshold).
_CATEGORY_LIMIT = 50
# Minimal mode still analyses text columns in full: word clouds, unicode character tables and a length
# histogram that the text section computes but never shows took nearly 90 % of a 100k-row report's build time
# (py-spy). The few-valued columns become categories instead (see compact), whose frequency tables show
# what the word counts showed; their bar chart repeats that table, so it is left out too.
_REPORT_SETTINGS: dict[str, Any] = {
    "vars": {"text": {"words": False, "characters": False, "length": False}},
    "plot": {"cat_freq": {"show": False}},
}


# glibc keeps freed heap in its arenas; malloc_trim hands it back. Absent elsewhere (musl, macOS).
_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)


def trim_heap() -> None:
    """Return freed memory to the system: Arrow's pool (it kept ~100 MiB of two 100k-record windows'
    tables after they were freed) and the C heap where the C library can (glibc)."""
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


@dataclass
class ProfileRequest:
    """Rows of one or more windows to profile; ``ranges`` maps partition → (first, last) offset."""

    job: str
    ranges: dict[int, tuple[int, int]]
    window_start: datetime
    window_end: datetime
    rows: pd.DataFrame
    # Leaf field → drift score of the window against the partition's previous one (merged: the highest).
    drift: dict[str, float] = field(default_factory=dict)

    @property
    def partitions(self) -> list[int]:
        return sorted(self.ranges)

    @property
    def key(self) -> str:
        """Deterministic identity: the same windows give the same key, so a re-send replaces."""
        spans = "_".join(f"p{p}-{first}-{last}" for p, (first, last) in sorted(self.ranges.items()))
        return _UNSAFE.sub("_", f"{self.job}_{spans}")

    @property
    def drift_max(self) -> tuple[str, float] | None:
        """The most drifted field and its score (None: no score given)."""
        if not self.drift:
            return None
        name = max(self.drift, key=lambda n: (self.drift[n], n))
        return name, self.drift[name]

    @property
    def file_name(self) -> str:
        parts = "-".join(str(p) for p in self.partitions)
        name = f"{self.job}_partitions-{parts}_{stamp(self.window_start)}_{stamp(self.window_end)}.html"
        return _UNSAFE.sub("_", name)

    def merged(self, other: ProfileRequest, max_rows: int) -> ProfileRequest:
        ranges = dict(self.ranges)
        for partition, (first, last) in other.ranges.items():
            old = ranges.get(partition)
            ranges[partition] = (first, last) if old is None else (min(old[0], first), max(old[1], last))
        rows = pd.concat([self.rows, other.rows], ignore_index=True)
        drift = dict(self.drift)
        for name, score in other.drift.items():
            drift[name] = max(score, drift.get(name, score))
        return ProfileRequest(
            self.job,
            ranges,
            min(self.window_start, other.window_start),
            max(self.window_end, other.window_end),
            sample(rows, max_rows, seed=sum(first for first, _ in ranges.values())),
            drift,
        )


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"


def sample(rows: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows, chosen reproducibly."""
    if len(rows) <= max_rows:
        return rows
    return rows.sample(n=max_rows, random_state=seed % (2**32)).reset_index(drop=True)


def warm_up() -> float:
    """Import ydata-profiling (seconds; runs in the worker process before the first report)."""
    started = time.perf_counter()
    import ydata_profiling  # noqa: F401

    return time.perf_counter() - started


def compact(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with its string columns of at most ``_CATEGORY_LIMIT`` distinct values as pandas
    categories: the report then shows their value frequencies, and they take a fraction of the memory."""
    converted = rows.copy(deep=False)
    for position in range(rows.shape[1]):
        column = rows.iloc[:, position]
        # Only plain strings: a column of lists or dicts cannot be counted, one of mixed types is
        # better left to ydata-profiling's own type detection.
        if (
            column.dtype == object
            and pd.api.types.infer_dtype(column, skipna=True) == "string"
            and column.nunique() <= _CATEGORY_LIMIT
        ):
            converted.isetitem(position, column.astype("category"))
    return converted


def build_html(request: ProfileRequest) -> str:
    """The report's HTML (ydata-profiling, minimal mode, text analysis reduced to counts)."""
    from ydata_profiling import ProfileReport

    title = f"{request.job} partitions {','.join(map(str, request.partitions))} {stamp(request.window_start)}"
    report = ProfileReport(
        compact(request.rows), title=title, minimal=True, progress_bar=False, **_REPORT_SETTINGS
    )
    html = str(report.to_html())
    # The worker lives for several reports: without this it keeps ~50 MiB of a 100k-row report's freed
    # heap while it waits for the next.
    del report
    gc.collect()
    trim_heap()
    return html
