"""What a profile report is made of and how it is built: the request (rows as an Arrow table, offset
ranges, a deterministic key), the job handed to the worker process (the rows as Arrow IPC bytes) and
the HTML from ydata-profiling in minimal mode.

The observer's main process only samples, merges and serialises Arrow tables here: pandas and
ydata-profiling are imported by ``build_html`` and ``warm_up``, which run in the profiler's worker
process (see ``profiler``), and nowhere else. The worker imports this module too, so the environment
below is set there before ydata-profiling is imported.
"""

from __future__ import annotations

import os

# Before ydata-profiling is imported anywhere in the process: no phoning home, no display needed.
os.environ.setdefault("YDATA_PROFILING_NO_ANALYTICS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# ydata-profiling draws tqdm bars on stderr, which would break the one-JSON-object-per-line logs.
os.environ.setdefault("TQDM_DISABLE", "1")

import array
import ctypes
import gc
import random
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandas as pd
    from ydata_profiling import ProfileReport

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# ydata-profiling's own limit between categorical and free text (vars.cat.cardinality_threshold).
_CATEGORY_LIMIT = 50
# Minimal mode still analyses text columns in full: word clouds, unicode character tables and a length
# histogram that the text section computes but never shows took nearly 90 % of a 100k-row report's build time
# (py-spy). The few-valued columns become categories instead (see compact), whose frequency tables show
# what the word counts showed; their bar chart repeats that table, so it is left out too.
# (Those columns are dictionary-encoded in Arrow, before pandas sees them: see ``compact``.)
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
    """Rows of one or more windows to profile (the window's leaf table); ``ranges`` maps partition →
    (first, last) offset."""

    job: str
    ranges: dict[int, tuple[int, int]]
    window_start: datetime
    window_end: datetime
    rows: pa.Table
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
    def title(self) -> str:
        return f"{self.job} partitions {','.join(map(str, self.partitions))} {stamp(self.window_start)}"

    def job_for_worker(self) -> ProfileJob:
        """What crosses to the worker process: the title and the rows as one Arrow IPC stream."""
        return ProfileJob(self.title, to_ipc(self.rows))

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
        # Columns missing from one side are null there, as the visit schema's leaves are in every window.
        rows = pa.concat_tables([self.rows, other.rows], promote_options="permissive")
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


@dataclass(frozen=True)
class ProfileJob:
    """A report to build, as the worker process receives it: no pandas object crosses the process
    boundary, only Arrow IPC bytes, turned into pandas in the worker."""

    title: str
    ipc: bytes


def to_ipc(rows: pa.Table) -> bytes:
    """``rows`` as one Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    ipc: bytes = sink.getvalue().to_pybytes()
    return ipc


def from_ipc(ipc: bytes) -> pa.Table:
    """The table of :func:`to_ipc` (its buffers point into ``ipc``: no copy)."""
    return pa.ipc.open_stream(pa.py_buffer(ipc)).read_all()


def sample(rows: pa.Table, max_rows: int, seed: int) -> pa.Table:
    """At most ``max_rows`` rows, chosen reproducibly (kept in their order)."""
    if rows.num_rows <= max_rows:
        return rows
    picked = array.array("q", sorted(random.Random(seed).sample(range(rows.num_rows), max_rows)))
    # From a buffer: pa.array() of a list or of a numpy array makes pyarrow import pandas.
    return rows.take(pa.Array.from_buffers(pa.int64(), len(picked), [None, pa.py_buffer(picked)]))


def _profile_report() -> type[ProfileReport]:
    """ydata-profiling's report class, imported without numba: visions (its type system) imports numba
    when installed, for numpy-backend checks the pandas backend never calls, and ydata-profiling only
    needs it for correlations, which minimal mode leaves out. Marked absent, it costs the worker nothing
    (it was 67 MiB of the worker's memory and a third of its import time)."""
    sys.modules.setdefault("numba", None)  # type: ignore[arg-type]
    from ydata_profiling import ProfileReport as report_class

    return cast("type[ProfileReport]", report_class)


def warm_up() -> float:
    """Import ydata-profiling (seconds; runs in the worker process before the first report)."""
    started = time.perf_counter()
    _profile_report()
    return time.perf_counter() - started


def compact(rows: pa.Table) -> pa.Table:
    """``rows`` with its string columns of 1 to ``_CATEGORY_LIMIT`` distinct values dictionary-encoded
    (sorted, as pandas orders categories): they become pandas categories without one Python string per
    row, and the report shows their value frequencies."""
    for position, column in enumerate(rows.columns):
        # Only plain strings: an all-null column is left to ydata-profiling's own type detection.
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        values = pc.unique(column).drop_null()
        if not 0 < len(values) <= _CATEGORY_LIMIT:
            continue
        values = values.take(pc.sort_indices(values))
        indices = pc.index_in(column, value_set=values)
        encoded = pa.chunked_array(
            [pa.DictionaryArray.from_arrays(chunk, values) for chunk in indices.chunks],
            pa.dictionary(pa.int32(), values.type),
        )
        rows = rows.set_column(position, rows.field(position).with_type(encoded.type), encoded)
    return rows


def to_frame(rows: pa.Table) -> pd.DataFrame:
    """The worker's pandas frame of ``rows`` (few-valued strings as categories, see :func:`compact`)."""
    # split_blocks: one array per column, so pandas does not copy same-typed columns into one 2-D block.
    # Measured on 100k generator visits, the frame took 50 MiB when the categories were made in pandas,
    # 44 MiB dictionary-encoded in Arrow, 40 MiB with split_blocks too (self_destruct saved nothing more:
    # the columns' buffers belong to the IPC bytes).
    return compact(rows).to_pandas(split_blocks=True)


def build_html(job: ProfileJob) -> str:
    """The report's HTML (ydata-profiling, minimal mode, text analysis reduced to counts); runs in the
    worker process."""
    frame = to_frame(from_ipc(job.ipc))
    # The conversion's freed buffers, before ydata-profiling's own peak: the worker's peak PSS on 100k
    # generator visits fell from 366-384 MiB to 345-355 MiB.
    trim_heap()
    report = _profile_report()(frame, title=job.title, minimal=True, progress_bar=False, **_REPORT_SETTINGS)
    del frame
    html = str(report.to_html())
    # The worker lives for several reports: without this it keeps ~50 MiB of a 100k-row report's freed
    # heap while it waits for the next.
    del report
    gc.collect()
    trim_heap()
    return html
