"""Benchmark of the quality hot path (not a test).

    uv run python -m bench.by_hand.quality_meter

Prints records per CPU-second for clean windows and for windows with a few bad records, for the meter as
the observer runs it (the compiled classifier, one call per window) and for the shared rule alone
(pyarrow's JSON reader with bisection: the meter before the classifier), in the same run; with the leaf
rows kept and summarized for drift (what the measuring worker does per window) and without.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

from streamwatch_observer.drift import summarize_leaves
from streamwatch_observer.quality import QualityMeter, WindowQuality


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


def rate(values: list[bytes], measure: Callable[[list[bytes]], object], repeat: int = 5) -> float:
    """Records per CPU-second of this thread (best of ``repeat``): the compiled part runs on it too."""
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        measure(values)
        best = min(best, time.thread_time() - start)
    return len(values) / max(best, 1e-9)


def with_drift(measure: Callable[[list[bytes]], WindowQuality]) -> Callable[[list[bytes]], object]:
    def run(values: list[bytes]) -> object:
        quality = measure(values)
        assert quality.rows is not None and not isinstance(quality.rows, list)
        return summarize_leaves(quality.rows)

    return run


def main() -> None:
    rng = random.Random(1)
    clean = [visit(i, rng) for i in range(10000)]
    dirty = list(clean)
    for i in range(0, len(dirty), 1000):
        dirty[i] = b"{not json"
    typed = list(clean)
    typed[5] = json.dumps({"visit_id": "x", "user_id": 7}).encode()
    windows = {"clean window": clean, "0.1% unparseable": dirty, "a wrong-typed record": typed}
    print("records per CPU-second, 10k-record windows: compiled classifier | shared rule alone | ratio")
    for keep_rows in (False, True):
        meter = QualityMeter(["event_time", "user_id", "page"], "visit_id", keep_rows=keep_rows)
        for label, values in windows.items():
            new, old = rate(values, meter.measure), rate(values, meter._measure_reference)
            what = "+ rows" if keep_rows else "counts"
            print(f"{label:24} {what:7} {new:>12,.0f} | {old:>10,.0f} | {new / old:.2f}x")
        if keep_rows:
            new = rate(clean, with_drift(meter.measure))
            old = rate(clean, with_drift(meter._measure_reference))
            label = "clean + drift summaries"
            print(f"{label:24} {'+ rows':7} {new:>12,.0f} | {old:>10,.0f} | {new / old:.2f}x")


if __name__ == "__main__":
    main()
