"""By-hand: the passthrough's records/s on the offline kind cluster in its own pod (0 executors: Spark
``local[2]`` in the driver's JVM) and on executor pods (Spark's Kubernetes scheduler).

Makes the offline kind cluster the kind tests use (k8s/offline/README.md: two nodes on this machine's
cores, the chart installed by ``k8s/kind.sh up``) with ``executors_kind_values.yaml``, then, per round and
executor count: scales the passthrough to 0 (its executors go with its driver), writes a backlog of
``--backlog`` visits into ``visits`` with the generator's own code in the generator's pod, sets the count
with ``helm upgrade``, scales the passthrough back to 1 and reads its ``batch_progress`` log lines until
they reach the backlog's end offsets. The rate is the rows of every batch after the first, over the time
from the first batch's line to the last's (the first batch carries the JVM's and the executors' start).
The counts alternate over the rounds (0 1 2, then 2 1 0) so drift on the machine falls on each alike.

    uv run --frozen python -m bench.by_hand.executors_kind [--backlog 300000] [--counts 0,1,2] [--rounds 2]

Prints one JSON line per round and a table; writes ``bench/results/executors_kind.json``. Takes about
10 minutes for the cluster and 4 per round. Never run it beside the kind tests: they share the sandbox.
Not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.__main__ import RESULTS_DIR
from bench.machine import describe, load_average
from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.images import build_chart_images
from streamwatch_dev.infra_images import IMAGES, build_infra_images
from streamwatch_dev.kind_release import Cluster, offline_release
from streamwatch_dev.process import OUTPUT_ROOT

VALUES = Path(__file__).with_name("executors_kind_values.yaml")
# objectStore.credentialsSecret.name in VALUES.
STORE_SECRET = "checkpoint-store"
SOURCE = "visits"
JOB = "passthrough"


@dataclass(frozen=True)
class Round:
    executors: int
    backlog: int
    copied: int
    batches: int
    measured_rows: int
    measured_seconds: float
    records_per_second: float
    nodes: list[str]


def _stop_passthrough(cluster: Cluster) -> None:
    cluster.scale(JOB, 0)

    def gone() -> bool | None:
        return True if not cluster.pods(JOB) and not cluster.executor_pods(JOB) else None

    cluster.wait("the passthrough and its executors gone", gone, 300)


def _write_backlog(cluster: Cluster, records: int) -> None:
    """``records`` visits at full speed by the generator's code, beside the idle generator in its pod."""
    (pod,) = cluster.ready_pods("generator")
    cluster.sandbox.kubectl(
        "exec", pod, "-c", "generator", "--", "env", "GENERATOR_RATE=0", f"GENERATOR_TOTAL={records}",
        "GENERATOR_EXIT_WHEN_DONE=true", "OPS_PORT=0", "streamwatch-generator", timeout=900,
    )  # fmt: skip


def _timestamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["ts"]).timestamp()


def measure(cluster: Cluster, executors: int, backlog: int) -> Round:
    _stop_passthrough(cluster)
    start = cluster.end_offsets(SOURCE)[SOURCE]
    _write_backlog(cluster, backlog)
    end = cluster.end_offsets(SOURCE)[SOURCE]
    # Whether the upgrade brings the scaled-down Deployment back or not, the backlog is already there.
    cluster.helm_upgrade(f"passthrough.spark.executors.count={executors}")
    cluster.scale(JOB, 1)
    (driver,) = cluster.wait_ready(JOB, 1, timeout=900)

    def drained() -> list[dict[str, Any]] | None:
        progress = [e for e in cluster.batch_progress(driver) if e["input_rows"] > 0]
        reached = progress[-1]["end_offsets"] if progress else {}
        done = all(reached.get(f"{SOURCE}/{p}", -1) >= offset for p, offset in end.items())
        return progress if done else None

    batches = cluster.wait(f"{backlog:,} visits copied on {executors} executor(s)", drained, 1200, 5)
    nodes = sorted(p["spec"].get("nodeName", "?") for p in cluster.executor_pods(JOB))
    measured = batches[1:]
    rows = sum(e["input_rows"] for e in measured)
    seconds = _timestamp(batches[-1]) - _timestamp(batches[0]) if measured else 0.0
    return Round(
        executors=executors,
        backlog=sum(end[p] - start.get(p, 0) for p in end),
        copied=sum(e["input_rows"] for e in batches),
        batches=len(batches),
        measured_rows=rows,
        measured_seconds=round(seconds, 2),
        records_per_second=round(rows / seconds) if seconds > 0 else 0,
        nodes=nodes,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--backlog", type=int, default=300_000, help="visits per round")
    parser.add_argument("--counts", default="0,1,2", help="executor counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    order = [c for r in range(args.rounds) for c in (counts if r % 2 == 0 else counts[::-1])]
    log_dir = OUTPUT_ROOT / "_bench_executors_kind"
    log_dir.mkdir(parents=True, exist_ok=True)
    engine = DockerEngine.connect_or_start(log_dir)
    rounds: list[Round] = []
    try:
        images = build_chart_images(engine, log_dir / "_images")
        build_infra_images(engine, log_dir / "_images")
        infra = {image.name: image.ref for image in IMAGES}
        load_before = load_average()
        with offline_release(
            engine, images, infra, log_dir / "_kind", values_files=[VALUES], store_secret=STORE_SECRET
        ) as cluster:
            for executors in order:
                result = measure(cluster, executors, args.backlog)
                rounds.append(result)
                print(json.dumps(asdict(result)), flush=True)
        load_after = load_average()
    finally:
        engine.stop()
    print(f"\n{args.backlog:,} visits a round, load {load_before[0]:.1f} → {load_after[0]:.1f}")
    print("| executors | records/s (median) | rounds |\n| --- | --- | --- |")
    for count in counts:
        rates = [r.records_per_second for r in rounds if r.executors == count]
        print(f"| {count} | {statistics.median(rates):,.0f} | {', '.join(f'{x:,}' for x in rates)} |")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "executors_kind.json").write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": describe(),
                "load": [load_before, load_after],
                "backlog": args.backlog,
                "rounds": [asdict(r) for r in rounds],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
