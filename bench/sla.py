"""SLA detection latency: first slow micro-batch → "SLA miss visits synchronizer" firing in Prometheus.

The rule is the chart's own file rendered with a short SLA and ``for``; Prometheus scrapes the
Pushgateway and evaluates every second. The visits writer sleeps in every batch (its simulated latency
setting), so its first batch with data is already slow; the generator keeps data coming. The latency is
measured from the end of that batch (the earliest moment its duration is known) to the first poll that
sees the alert firing (polled every 0.1 s). The theoretical minimum is ``for`` + scrape + evaluation
interval, as the issue defines it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.report import BenchRun
from bench.stack import Infra, PeakRss, stamp
from bench.visits_writer import writer_env
from streamwatch_dev.chart import render_rule_files
from streamwatch_dev.prometheus import Prometheus
from streamwatch_dev.services import ServiceProcess, service_env

NAME = "sla-detection"
ALERT = "SLA miss visits synchronizer"
_POLL_S = 0.1
INSTANCE = "bench-sla"


def run(run_: BenchRun, infra: Infra, work: Path, quick: bool) -> None:
    """One writer, slow from its first batch; time the alert's way through pending to firing."""
    threshold_ms, for_s, interval_s, latency_s = 1000, 5 if quick else 15, 1, 2
    rules = render_rule_files(
        work / "sla-rules",
        {"alerts.slaMiss.thresholdMs": threshold_ms, "alerts.slaMiss.for": f"{for_s}s"},
    )
    (rule_file,) = [p for p in rules if p.name == "visits-writer.rules.yaml"]
    gateway = infra.pushgateway
    prometheus = Prometheus.start(
        work / "sla-prometheus", [rule_file], pushgateway=gateway.url, interval=f"{interval_s}s"
    )
    topic = infra.kafka.create_topic(f"bench-sla-{int(time.time())}", 2)
    generator = _generator(infra, work, topic)
    writer = ServiceProcess(
        "streamwatch-visits-writer",
        work / "sla-writer.log",
        writer_env(
            infra,
            topic,
            work / "sla-writer",
            batch=1000,
            instance=INSTANCE,
            VISITS_WRITER_SIMULATED_LATENCY_SECONDS=str(latency_s),
            VISITS_WRITER_PUSHGATEWAY_URL=gateway.url,
        ),
    )
    rss: PeakRss | None = None
    try:
        generator.start_ready(timeout=60)
        writer.start()
        rss = PeakRss(writer.pid)
        pending_at, fired_at = _wait_firing(prometheus, writer)
        slow = [b for b in writer.events("batch_written") if b.get("records") and b["seconds"] > 1]
        first_slow = min(stamp(b) for b in slow)
        active_at = min(_unix(a["activeAt"]) for a in _ours(prometheus))
    finally:
        writer.stop(timeout=60)
        generator.stop()
        prometheus.stop()
        if rss is not None:
            rss.stop()
    _report(
        run_,
        f"for {for_s}s, scrape {interval_s}s, evaluation {interval_s}s, SLA {threshold_ms} ms",
        minimum=for_s + 2 * interval_s,
        first_slow=first_slow,
        active_at=active_at,
        pending_seen=pending_at or fired_at,
        fired_at=fired_at,
    )
    if rss is not None:
        run_.memory.append(rss.memory("visits-writer", "SLA run (1,000 records/trigger, 100 visits/s)"))


def _generator(infra: Infra, work: Path, topic: str) -> ServiceProcess:
    """The generator at 100 visits/s, clean: detection latency must not depend on the dead-letter path."""
    return ServiceProcess(
        "streamwatch-generator",
        work / "sla-generator.log",
        service_env(
            **infra.kafka.env(),
            GENERATOR_TOPIC=topic,
            GENERATOR_RATE="100",
            GENERATOR_TOTAL="0",
            GENERATOR_MISSING_FIELDS_PERCENT="0",
            GENERATOR_DUPLICATE_PERCENT="0",
            GENERATOR_UNPARSEABLE_PERCENT="0",
        ),
    )


def _wait_firing(prometheus: Prometheus, writer: ServiceProcess) -> tuple[float | None, float]:
    """Poll the alert until it fires: when the poll first saw it pending (None: never) and firing."""
    fired_at = pending_at = None
    deadline = time.monotonic() + 300
    while fired_at is None and time.monotonic() < deadline:
        if not writer.running:
            raise RuntimeError(f"visits writer exited:\n{writer.tail()}")
        states = {a["state"] for a in _ours(prometheus)}
        if pending_at is None and states & {"pending", "firing"}:
            pending_at = time.time()
        if "firing" in states:
            fired_at = time.time()
        time.sleep(_POLL_S)
    if fired_at is None:
        raise TimeoutError(f"alert never fired:\n{writer.tail()}")
    return pending_at, fired_at


def _report(
    run_: BenchRun,
    note: str,
    *,
    minimum: float,
    first_slow: float,
    active_at: float,
    pending_seen: float,
    fired_at: float,
) -> None:
    """The latencies from the end of the first slow batch, against the theoretical minimum."""
    latency = fired_at - first_slow
    run_.add(NAME, "first slow batch → firing", "latency", latency, "s", note=note)
    run_.add(
        NAME,
        "first slow batch → pending",
        "latency",
        active_at - first_slow,
        "s",
        note="alert activeAt (Prometheus) - end of the batch",
    )
    run_.add(NAME, "theoretical minimum", "for + scrape + evaluation", minimum, "s")
    run_.add(
        NAME,
        "above theoretical minimum",
        "excess",
        latency - minimum,
        "s",
        note=f"poll resolution {_POLL_S}s; pending seen by the poll at +{pending_seen - first_slow:.1f}s",
    )


def _ours(prometheus: Prometheus) -> list[dict[str, Any]]:
    return [a for a in prometheus.alerts(ALERT) if a["labels"].get("instance") == INSTANCE]


def _unix(text: str) -> float:
    """Prometheus' RFC 3339 time (nanosecond fraction) as Unix seconds."""
    from datetime import datetime

    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(whole + "+00:00").timestamp()
    return seconds + (float(f"0.{fraction}") if fraction else 0.0)
