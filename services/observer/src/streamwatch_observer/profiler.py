"""Profile reports built by one background worker, so profiling never holds up quality and lag.

Windows are handed over without waiting, and reports are built in a separate worker process, so
ydata-profiling neither competes with the consume loop for the interpreter lock nor keeps its memory in
the observer process (the worker is replaced every few reports). The rows stay an Arrow table in the
observer process and cross to the worker as Arrow IPC bytes; pandas exists only in the worker. While the
worker is busy, newly closed windows are merged into one pending request, resampled to the row limit, so
memory stays bounded by one report's rows whatever the input rate (the report then covers several windows
and partitions, which its name and key say). Reports go to the profile publisher when its URL is set,
otherwise to a directory.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from streamwatch_observer import metrics
from streamwatch_observer.delivery import Destination
from streamwatch_observer.report import ProfileRequest, build_html, sample, trim_heap, warm_up

logger = logging.getLogger(__name__)

# ydata-profiling does not give all its memory back; a fresh worker process every few reports does.
_TASKS_PER_WORKER = 10


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
            return
        # Nothing runs in the pool now, so waiting is short; and it must wait: without it the pool's
        # manager thread can still be replacing a worker that reached max_tasks_per_child after the
        # pool dropped its process table, and dies on it ("object of type 'NoneType' has no len()").
        self._pool.shutdown(wait=True, cancel_futures=True)

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
            job = request.job_for_worker()
            trim_heap()  # the IPC stream's building buffers, freed on this thread
            html = self._pool.submit(build_html, job).result()
            del job
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
                "columns": request.rows.num_columns,
                "build_seconds": round(built, 3),
                "html_bytes": len(html),
                "target": target,
                "location": location,
            },
        )
