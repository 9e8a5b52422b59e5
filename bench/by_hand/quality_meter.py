"""Benchmark of the quality hot path (not a test).

    uv run python -m bench.by_hand.quality_meter

Prints records/s for clean windows and for windows with a few bad records (the record-level fallback).
"""

from __future__ import annotations

import json
import random
import time

from streamwatch_observer.quality import QualityMeter


def visit(i: int, rng: random.Random) -> bytes:
    return json.dumps(
        {
            "visit_id": f"v-{i}",
            "event_time": "2026-11-22T10:00:00.000Z",
            "user_id": f"u-{rng.randrange(1000)}",
            "keep_private": rng.random() < 0.5,
            "page": f"page-{rng.randrange(50)}.html",
            "context": {
                "referral": rng.choice(["google", "bing", None]),
                "ad_id": rng.choice(["ad1", None]),
                "user": {"ip": "10.0.0.1", "login": f"l{i}", "connected_since": None},
                "technical": {
                    "browser": "firefox",
                    "browser_version": "120",
                    "network_type": "wifi",
                    "device_type": "pc",
                    "device_version": "1",
                },
            },
        }
    ).encode()


def run(label: str, values: list[bytes], meter: QualityMeter, repeat: int = 5) -> None:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        meter.measure(values)
        best = min(best, time.perf_counter() - start)
    print(f"{label}: {len(values) / best:,.0f} records/s ({best * 1000:.1f} ms per {len(values)} records)")


def main() -> None:
    rng = random.Random(1)
    clean = [visit(i, rng) for i in range(10000)]
    meter = QualityMeter(["event_time", "user_id", "page"], "visit_id")
    run("clean window", clean, meter)
    dirty = list(clean)
    for i in range(0, len(dirty), 1000):
        dirty[i] = b"{not json"
    run("window with 0.1% unparseable", dirty, meter)
    typed = list(clean)
    typed[5] = json.dumps({"visit_id": "x", "user_id": 7}).encode()
    run("window with a wrong-typed record", typed, meter)


if __name__ == "__main__":
    main()
