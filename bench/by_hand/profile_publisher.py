"""Benchmark of the profile publisher on loopback (not a test; run by hand, bounded and small).

    PYTHONPATH=tests uv run python -m bench.by_hand.profile_publisher

Measures the latency of uploading a ~3 MB report (the size ydata-profiling produces for 100k rows),
the index page's requests per second with 50 reports stored, and the service's peak RSS.
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from profile_publisher.publisher_client import make_report, window_params

from streamwatch_dev.process import free_port
from streamwatch_dev.services import ServiceProcess, service_env

UPLOADS = 50
INDEX_REQUESTS = 500


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="publisher-bench-") as tmp:
        port, token = free_port(), secrets.token_hex(8)
        env = service_env(
            PROFILE_PUBLISHER_TOKEN=token,
            PROFILE_PUBLISHER_HOST="127.0.0.1",
            PROFILE_PUBLISHER_PORT=str(port),
            OPS_PORT=str(port),
            PROFILE_PUBLISHER_STORE_DIR=f"{tmp}/store",
        )
        env.pop("ELASTICSEARCH_URL", None)
        process = ServiceProcess("streamwatch-profile-publisher", Path(tmp) / "log", env)
        process.start_ready(path="/readyz")
        service = psutil.Process(process.pid)
        peak_rss = service.memory_info().rss
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                report = make_report("bench", size=3 * 1024 * 1024)
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/html"}
                latencies = []
                for i in range(UPLOADS):
                    started = time.perf_counter()
                    response = client.post(
                        "/api/reports", params=window_params(i, key=f"b{i}"), content=report, headers=headers
                    )
                    latencies.append(time.perf_counter() - started)
                    assert response.status_code == 201, response.text
                    peak_rss = max(peak_rss, service.memory_info().rss)
                latencies.sort()
                print(
                    f"upload {len(report) / 1e6:.2f} MB x{UPLOADS}: "
                    f"p50 {statistics.median(latencies) * 1000:.1f} ms, "
                    f"p95 {latencies[int(0.95 * UPLOADS) - 1] * 1000:.1f} ms, "
                    f"max {latencies[-1] * 1000:.1f} ms, "
                    f"{len(report) * UPLOADS / sum(latencies) / 1e6:.0f} MB/s"
                )
                started = time.perf_counter()
                for _ in range(INDEX_REQUESTS):
                    assert client.get("/").status_code == 200
                elapsed = time.perf_counter() - started
                peak_rss = max(peak_rss, service.memory_info().rss)
                print(
                    f"index page (50 reports, one connection): {INDEX_REQUESTS / elapsed:.0f} req/s, "
                    f"{elapsed / INDEX_REQUESTS * 1000:.2f} ms each"
                )
                report_url = client.get("/api/reports", params={"limit": 1}).json()["reports"][0]["url"]
                started = time.perf_counter()
                for _ in range(20):
                    assert len(client.get(report_url).content) == len(report)
                elapsed = time.perf_counter() - started
                print(f"report download 3 MB x20: {elapsed / 20 * 1000:.1f} ms each")
                print(f"service peak RSS: {peak_rss / 2**20:.0f} MiB")
        finally:
            process.stop()


if __name__ == "__main__":
    main()
