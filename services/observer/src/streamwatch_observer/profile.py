"""Profile reports (ydata-profiling, minimal mode) built by one background worker.

Profiling must never hold up quality and lag: windows are handed over without waiting, and reports are
built in a separate worker process, so ydata-profiling neither competes with the consume loop for the
interpreter lock nor keeps its memory in the observer process (the worker is replaced every few reports).
While the worker is busy, newly closed windows are merged into one pending request, resampled to the row
limit, so memory stays bounded by one report's rows whatever the input rate (the report then covers
several windows and partitions, which its name and key say).

Reports go to the profile publisher when its URL is set, otherwise to a directory.
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
import logging
import multiprocessing
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin

import httpx
import pandas as pd
import pyarrow as pa

from streamwatch_common.errors import StreamwatchError
from streamwatch_observer import metrics

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# ydata-profiling does not give all its memory back; a fresh worker process every few reports does.
_TASKS_PER_WORKER = 10
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


class ProfileDeliveryError(StreamwatchError):
    """A profile report could not be delivered after its retries."""


@dataclass
class ProfileRequest:
    """Rows of one or more windows to profile; ``ranges`` maps partition → (first, last) offset."""

    job: str
    ranges: dict[int, tuple[int, int]]
    window_start: datetime
    window_end: datetime
    rows: pd.DataFrame

    @property
    def partitions(self) -> list[int]:
        return sorted(self.ranges)

    @property
    def key(self) -> str:
        """Deterministic identity: the same windows give the same key, so a re-send replaces."""
        spans = "_".join(f"p{p}-{first}-{last}" for p, (first, last) in sorted(self.ranges.items()))
        return _UNSAFE.sub("_", f"{self.job}_{spans}")

    @property
    def file_name(self) -> str:
        parts = "-".join(str(p) for p in self.partitions)
        name = f"{self.job}_partitions-{parts}_{_stamp(self.window_start)}_{_stamp(self.window_end)}.html"
        return _UNSAFE.sub("_", name)

    def merged(self, other: ProfileRequest, max_rows: int) -> ProfileRequest:
        ranges = dict(self.ranges)
        for partition, (first, last) in other.ranges.items():
            old = ranges.get(partition)
            ranges[partition] = (first, last) if old is None else (min(old[0], first), max(old[1], last))
        rows = pd.concat([self.rows, other.rows], ignore_index=True)
        return ProfileRequest(
            self.job,
            ranges,
            min(self.window_start, other.window_start),
            max(self.window_end, other.window_end),
            sample(rows, max_rows, seed=sum(first for first, _ in ranges.values())),
        )


def _stamp(moment: datetime) -> str:
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

    title = (
        f"{request.job} partitions {','.join(map(str, request.partitions))} {_stamp(request.window_start)}"
    )
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


class Destination(Protocol):
    """Where finished reports go."""

    name: str

    def deliver(self, request: ProfileRequest, html: str) -> str: ...


class DirectoryDestination:
    """Writes reports as files (written to a temporary name, then renamed: readers never see half)."""

    name = "directory"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def deliver(self, request: ProfileRequest, html: str) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / request.file_name
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(path)
        return str(path)


class PublisherDestination:
    """POSTs reports to the profile publisher with bounded retries and back-off."""

    name = "publisher"

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        replica: str,
        retries: int,
        timeout: float,
        backoff: float = 1.0,
    ) -> None:
        self.base_url = url.rstrip("/")
        self.url = self.base_url + "/api/reports"
        self.replica = replica
        self.retries = retries
        self.backoff = backoff
        headers = {"Content-Type": "text/html; charset=utf-8"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(headers=headers, timeout=timeout)

    def deliver(self, request: ProfileRequest, html: str) -> str:
        params = {
            "job": request.job,
            "partitions": ",".join(str(p) for p in request.partitions),
            "window_start": request.window_start.astimezone(UTC).isoformat(),
            "window_end": request.window_end.astimezone(UTC).isoformat(),
            "rows": str(len(request.rows)),
            "replica": self.replica,
            "key": request.key,
        }
        body = html.encode("utf-8")
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._client.post(self.url, params=params, content=body)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in (200, 201):
                    # The publisher may answer with a path; make it a link that works from anywhere.
                    return urljoin(self.base_url + "/", str(response.json().get("url", "")))
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the request itself is wrong; repeating it cannot help
            logger.warning(
                "profile_delivery_retry", extra={"key": request.key, "attempt": attempt + 1, "error": last}
            )
        raise ProfileDeliveryError(f"profile {request.key}: {last}")


class Profiler:
    """One worker thread turning :class:`ProfileRequest` s into delivered reports (built in a worker
    process, delivered from the thread).

    Usage::

        profiler = Profiler(DirectoryDestination(Path("profiles")), max_rows=10000).start()
        profiler.submit(request)  # never blocks
        profiler.close(timeout=30)
    """

    def __init__(self, destination: Destination, max_rows: int) -> None:
        self.destination = destination
        self.max_rows = max_rows
        self._pending: ProfileRequest | None = None
        self._busy = False
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="profiler", daemon=True)
        self._pool = self._new_pool()

    @staticmethod
    def _new_pool() -> ProcessPoolExecutor:
        # spawn: a fork of a process with librdkafka and HTTP threads running is not safe.
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            max_tasks_per_child=_TASKS_PER_WORKER,
        )

    def start(self) -> Profiler:
        self._thread.start()
        return self

    def submit(self, request: ProfileRequest) -> None:
        """Queue a window's rows; merged into the pending request when one is waiting."""
        # Here, in the caller's thread, because Arrow's pool (mimalloc) hands back only what the calling
        # thread freed: the window's JSON buffers and intermediate tables, ~50 MiB per 100k records.
        trim_heap()
        request.rows = sample(request.rows, self.max_rows, seed=min(f for f, _ in request.ranges.values()))
        with self._cond:
            if self._pending is None:
                self._pending = request
            else:
                metrics.PROFILE_MERGED.inc()
                self._pending = self._pending.merged(request, self.max_rows)
            self._cond.notify()

    def idle(self) -> bool:
        """Nothing pending and nothing being built (tests and shutdown)."""
        with self._cond:
            return self._pending is None and not self._busy

    def close(self, timeout: float) -> None:
        """Finish what is pending if it fits in ``timeout``; later requests are given up."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("profiler_stop_timeout", extra={"timeout_seconds": timeout})
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        self._warm_up()
        while True:
            with self._cond:
                while self._pending is None and not self._closing:
                    self._cond.wait()
                request = self._pending
                if request is None:
                    return
                self._pending = None
                self._busy = True
            try:
                self._profile(request)
            finally:
                with self._cond:
                    self._busy = False

    def _warm_up(self) -> None:
        # Starting the worker and importing ydata-profiling takes seconds: before the first window.
        try:
            seconds = self._pool.submit(warm_up).result()
        except Exception as exc:
            metrics.PROFILE_FAILURES.labels(self.destination.name).inc()
            logger.exception("profiler_import_failed", extra={"error": str(exc)})
            self._replace_broken_pool(exc)
            return
        logger.info("profiler_ready", extra={"import_seconds": round(seconds, 3)})

    def _replace_broken_pool(self, exc: BaseException) -> None:
        # A worker killed (e.g. out of memory) breaks the pool for good: the next report gets a new one.
        if isinstance(exc, BrokenProcessPool):
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    def _profile(self, request: ProfileRequest) -> None:
        target = self.destination.name
        started = time.perf_counter()
        try:
            html = self._pool.submit(build_html, request).result()
            built = time.perf_counter() - started
            metrics.PROFILE_DURATION.observe(built)
            location = self.destination.deliver(request, html)
        except Exception as exc:
            metrics.PROFILE_FAILURES.labels(target).inc()
            self._replace_broken_pool(exc)
            logger.exception(
                "profile_failed",
                extra={"key": request.key, "rows": len(request.rows), "target": target, "error": str(exc)},
            )
            return
        metrics.PROFILES.labels(target).inc()
        logger.info(
            "profile_written",
            extra={
                "key": request.key,
                "partitions": request.partitions,
                "rows": len(request.rows),
                "columns": len(request.rows.columns),
                "build_seconds": round(built, 3),
                "html_bytes": len(html),
                "target": target,
                "location": location,
            },
        )
