"""Memory of one observer stays bounded when it is handed three windows' worth of data at once, and again
when Elasticsearch answers slowly: the consume loop writes synchronously, so a slow sink slows consumption
(back-pressure) instead of piling closed windows up in memory."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psutil
import pytest
from observer.conftest import ObserverFactory, visit

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.search import SearchServer

WINDOW = 2000
PAD = "x" * 2000  # ~2.4 KB per record: one window holds ~5 MB of raw values
SETTINGS = {
    "OBSERVER_WINDOW_RECORDS": str(WINDOW),
    "OBSERVER_WINDOW_SECONDS": "600",
    "OBSERVER_PROFILE_ENABLED": "false",
}


class PeakRss:
    """Samples the RSS of one process every 50 ms; ``peak`` is the highest seen since ``reset``."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.05)

    def start(self) -> PeakRss:
        self._thread.start()
        return self

    def reset(self) -> None:
        self.peak = 0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _windows_written(observers: ObserverFactory) -> int:
    return len(observers.docs("window"))


@pytest.mark.osmem  # the slow sink is the proxy's delay
def test_memory_bounded_with_three_windows_of_data_and_a_slow_sink(
    kafka: KafkaBroker, search: SearchServer, observers: ObserverFactory, output_dir: Path
) -> None:
    observers.topics(partitions=1)
    observer = observers.start("memory", **SETTINGS)
    time.sleep(3)  # joined the group, idle
    rss = PeakRss(observer.pid).start()
    mib = 1024 * 1024
    try:
        idle = rss.process.memory_info().rss
        # Phase 1: three windows at once.
        kafka.produce(observers.topic, [(None, visit(i, pad=PAD)) for i in range(3 * WINDOW)], partition=0)
        wait_until(lambda: _windows_written(observers) == 3, 90, what="three windows written")
        first_peak = rss.peak
        # Phase 2: three more windows while every search request takes 1 s (slow cluster).
        rss.reset()
        search.set_delay(1.0)
        started = time.monotonic()
        try:
            kafka.produce(
                observers.topic, [(None, visit(10**6 + i, pad=PAD)) for i in range(3 * WINDOW)], partition=0
            )
            wait_until(lambda: _windows_written(observers) == 6, 120, what="six windows written")
        finally:
            search.set_delay(0.0)
        slow_seconds = time.monotonic() - started
        second_peak = rss.peak
    finally:
        rss.stop()
    raw_window = WINDOW * len(visit(0, pad=PAD))
    report = {
        "idle_rss_mib": round(idle / mib, 1),
        "peak_rss_mib_three_windows": round(first_peak / mib, 1),
        "peak_rss_mib_three_more_slow_sink": round(second_peak / mib, 1),
        "raw_window_mib": round(raw_window / mib, 1),
        "slow_phase_seconds": round(slow_seconds, 1),
    }
    (output_dir / "measurements.json").write_text(json.dumps(report, indent=2))
    print(f"memory measurements: {report}")
    assert observer.running
    # Buffering everything would hold six windows (plus parsed copies); the bound is generous but
    # grows with neither the amount of data nor the sink's slowness. Under a slow sink one window waits
    # for its write, one is measured on the worker thread and the next fills: a window more in memory
    # than when the loop measured its windows itself.
    assert first_peak - idle < 15 * raw_window  # measured ~8x: raw values, parsed records, fetch queue
    assert second_peak < first_peak + 4 * raw_window
