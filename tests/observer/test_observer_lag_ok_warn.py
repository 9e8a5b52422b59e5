"""Lag evaluation OK and WARN from the checkpoint the real Spark passthrough writes while the real generator
keeps producing: a passthrough that keeps up is judged ok over a whole evaluation window and its lag in
seconds is measured; one whose trigger takes in fewer records than arrive (slow trigger, few records per
trigger) falls behind while it still commits, and is judged warn. Both as the metric and as the lag
documents' ``evaluation`` field; the STALL / REWIND / STOP counterpart is test_observer_lag_evaluation.py.

The steady run also shows completeness end to end, on the same processes: the passthrough pushes the end
offset it has read per partition, the observer exports the offset it has counted of the copy, and
Prometheus evaluates the chart's recording rule over both. The gap stays 0 while the observer keeps up;
once every observer is stopped it grows and "observer incomplete" fires."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
from observer.conftest import ObserverFactory, start_generator, start_passthrough

from streamwatch_dev.chart import render_rule_files
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Prometheus, Pushgateway
from streamwatch_dev.services import ServiceProcess, metric_value
from streamwatch_dev.spark import newest_committed

pytestmark = pytest.mark.spark

PARTITIONS = (0, 1)
# Short, so a test fills it twice within its run; still several lag intervals and trigger intervals long
# (the setting's own rule, and what WARN needs: at least 3 commits in one window).
EVALUATION_WINDOW = 10.0
STEADY_TRIGGER = 0.5
STEADY_RATE = 20  # records/s over both partitions: a few records per batch, far below what a batch copies
SLOW_TRIGGER = 2.0
SLOW_MAX_RECORDS = 10  # per trigger, shared by both partitions: 5 records/s taken in...
SLOW_RATE = 40  # ...while 40/s arrive
WARN_RUN = 3  # consecutive warn measurements per partition: a trend held, not one measurement

GAP = "streamwatch:observer_completeness_gap_records"
INCOMPLETE = "observer incomplete"
# Not the chart's default job name: the rule must follow the value the passthrough is given.
PUSH_JOB = "passthrough-completeness"
# The observer closes a window every 2 s and the passthrough triggers every 0.5 s, so what was read
# 20 s ago has long been counted unless the observer is really behind.
SETTLE = "20s"
STEADY_SECONDS = 20


Doc = dict[str, Any]


def moment(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def lag_docs(observers: ObserverFactory, partition: int) -> list[Doc]:
    docs = [d for d in observers.docs("lag") if d["partition"] == partition]
    return sorted(docs, key=lambda d: moment(d["@timestamp"]))


def evaluation(metrics_text: str, topic: str, partition: int) -> str | None:
    for status in ("ok", "warn", "stall", "stop", "rewind"):
        labels = {"topic": topic, "partition": str(partition), "status": status}
        if metric_value(metrics_text, "observer_lag_evaluation", **labels) == 1:
            return status
    return None


def first_run(
    docs: list[Doc], keep: Callable[[Doc], bool], interval: float, enough: Callable[[list[Doc]], bool]
) -> list[Doc]:
    """The first run of consecutive documents that ``keep`` accepts and that is ``enough`` ([] if none).
    A measurement the loaded machine made one bucket late still counts as consecutive; a longer gap, or a
    document ``keep`` refuses, ends a run."""
    runs: list[list[Doc]] = [[]]
    for doc in docs:
        run = runs[-1]
        late = bool(run) and moment(doc["@timestamp"]) - moment(run[-1]["@timestamp"]) > 2 * interval
        if not keep(doc) or late:
            runs.append([])
        if keep(doc):
            runs[-1].append(doc)
    return next((run for run in runs if run and enough(run)), [])


def per_partition(prom: Prometheus, expr: str) -> dict[str, float]:
    return {r["metric"]["partition"]: float(r["value"][1]) for r in prom.query(expr)}


def completeness_prometheus(output_dir: Path, gateway: Pushgateway, observer: ServiceProcess) -> Prometheus:
    """Prometheus with the chart's observer rules, rendered for this run's push job, scraping both."""
    rules = [
        p
        for p in render_rule_files(
            output_dir / "rules",
            {
                "passthrough.settings.push_job": PUSH_JOB,
                "alerts.completeness.settle": SETTLE,
                "alerts.completeness.for": "5s",
            },
        )
        if p.name == "observer.rules.yaml"
    ]
    return Prometheus.start(
        output_dir / "prometheus", rules, pushgateway=gateway.url, targets=[f"127.0.0.1:{observer.ops_port}"]
    )


def assert_complete_then_incomplete_once_stopped(prom: Prometheus, observer: ServiceProcess) -> None:
    # Steady state: the passthrough's reading as of SETTLE ago covers records on both partitions (so a 0
    # is not an empty comparison), the gap series exists for both, and it stays 0 over STEADY_SECONDS.
    settled_read = (
        f'max by (partition) (streaming_batch_source_end_offset{{job="{PUSH_JOB}"}} offset {SETTLE})'
    )
    wait_until(
        lambda: (read := per_partition(prom, settled_read)).keys() == {"0", "1"} and min(read.values()) > 0,
        180,
        what="the passthrough's settled reading on both partitions",
    )
    wait_until(lambda: per_partition(prom, GAP) == {"0": 0.0, "1": 0.0}, 60, what="a complete observer")
    complete_since = time.monotonic()
    steady_from = per_partition(prom, settled_read)
    wait_until(
        lambda: (
            time.monotonic() - complete_since > STEADY_SECONDS + 1
            and min(per_partition(prom, settled_read).values()) > max(steady_from.values())
        ),
        STEADY_SECONDS + 60,
        what="a span of steady state with the passthrough reading on",
    )
    worst = per_partition(prom, f"max_over_time({GAP}[{STEADY_SECONDS}s])")
    assert worst == {"0": 0.0, "1": 0.0}, f"a gap while the observer kept up: {worst}"
    assert prom.alerts(INCOMPLETE) == []

    # Every observer stops: what the passthrough reads from now on is missing, and the alert fires.
    observer.stop()
    wait_until(lambda: prom.alert_state(INCOMPLETE) == "firing", 120, interval=0.5, what="alert firing")
    first = per_partition(prom, GAP)
    assert min(first.values()) > 0, first
    wait_until(
        lambda: sum(per_partition(prom, GAP).values()) > sum(first.values()),
        60,
        what="the gap growing while the generator runs",
    )


def test_a_passthrough_that_keeps_up_is_ok_with_its_lag_in_seconds_and_observed_completely(
    kafka: KafkaBroker, observers: ObserverFactory, output_dir: Path, processes: list[Any]
) -> None:
    interval = float(observers.env()["OBSERVER_LAG_INTERVAL_SECONDS"])
    observers.topics(partitions=len(PARTITIONS))
    gateway = Pushgateway.start(output_dir / "pushgateway")
    processes.append(gateway)
    start_passthrough(
        kafka,
        observers,
        output_dir / "passthrough.log",
        processes,
        PASSTHROUGH_TRIGGER_INTERVAL_SECONDS=str(STEADY_TRIGGER),
        PASSTHROUGH_PUSHGATEWAY_URL=gateway.url,
        PASSTHROUGH_PUSH_JOB=PUSH_JOB,
    )
    start_generator(
        kafka,
        observers.source,
        output_dir / "generator.log",
        processes,
        GENERATOR_TOTAL="0",  # until the teardown stops it
        GENERATOR_RATE=str(STEADY_RATE),
        GENERATOR_SEED="31",
    )
    # Steady state: the first (slow, JVM warming up) batches are behind us, every partition is committed.
    wait_until(
        lambda: (
            all(o > 0 for o in newest_committed(observers.checkpoint, observers.source).values())
            and len(newest_committed(observers.checkpoint, observers.source)) == len(PARTITIONS)
        ),
        120,
        what="committed records of every partition",
    )
    observer = observers.start(
        OBSERVER_PROFILE_ENABLED="false",
        OBSERVER_LAG_EVALUATION_WINDOW_SECONDS=str(EVALUATION_WINDOW),
        OBSERVER_WINDOW_SECONDS="2",
    )
    # Started now, so its history fills while the lag evaluation is judged below.
    prom = completeness_prometheus(output_dir, gateway, observer)
    processes.append(prom)

    def ok_after_a_full_window(partition: int) -> list[Doc]:
        docs = lag_docs(observers, partition)
        measured = [moment(d["@timestamp"]) for d in docs if d["status"] == "ok"]
        if not measured:
            return []
        filled = measured[0] + EVALUATION_WINDOW  # the evaluation's window is complete from here on
        judged = [d for d in docs if moment(d["@timestamp"]) >= filled]
        return first_run(
            judged,
            lambda d: d["status"] == d["evaluation"] == "ok",
            interval,
            lambda run: moment(run[-1]["@timestamp"]) - moment(run[0]["@timestamp"]) >= EVALUATION_WINDOW,
        )

    def steady() -> dict[int, list[Doc]] | None:
        runs = {p: ok_after_a_full_window(p) for p in PARTITIONS}
        if not all(runs.values()):
            return None
        text = observer.metrics()
        for p in PARTITIONS:
            if evaluation(text, observers.source, p) != "ok":
                return None
            seconds = metric_value(text, "observer_lag_seconds", topic=observers.source, partition=str(p))
            if seconds is None or seconds < 0:
                return None
        return runs

    runs = cast(
        dict[int, list[Doc]],
        wait_until(steady, 90, interval=0.5, what="every partition ok over a whole evaluation window"),
    )
    # Read at once: Spark keeps the newest 100 batches, the run's batches are among them.
    for partition, run in runs.items():
        for doc in run:
            seconds = doc["lag_seconds"]
            assert isinstance(seconds, float | int) and seconds >= 0, doc
            # The oldest record not yet committed arrived after batch N fixed its end offsets (just before
            # Spark wrote offsets/N), so it is at most that old when observed; one lag interval on top
            # for Spark's planning and the producer's delivery, both far shorter.
            fixed = (observers.checkpoint / "offsets" / str(doc["batch_id"])).stat().st_mtime
            bound = moment(doc["observed_at"]) - fixed + interval
            assert seconds <= bound, (partition, seconds, bound, doc)
        waiting = [d for d in run if d["lag_offsets"] > 0]
        assert waiting and all(d["lag_seconds"] > 0 for d in waiting), (partition, run)
    alarms = [d for d in observers.docs("lag") if d["evaluation"] in ("stall", "stop", "rewind")]
    assert not alarms, "a passthrough that keeps up raised a lag alert"

    assert_complete_then_incomplete_once_stopped(prom, observer)


def test_a_slow_trigger_that_falls_behind_while_committing_is_warn(
    kafka: KafkaBroker, observers: ObserverFactory, output_dir: Path, processes: list[Any]
) -> None:
    # Lag at each commit = backlog before it + what arrived since: between the first measurements of two
    # commits (at least one lag interval apart) about SLOW_RATE / 2 records arrive per partition and a
    # batch takes in at most SLOW_MAX_RECORDS, so the lag at commit grows every time: WARN by construction.
    interval = float(observers.env()["OBSERVER_LAG_INTERVAL_SECONDS"])
    assert SLOW_RATE / len(PARTITIONS) * interval > SLOW_MAX_RECORDS
    assert 3 * SLOW_TRIGGER + interval <= EVALUATION_WINDOW  # three commits fit in one window
    observers.topics(partitions=len(PARTITIONS))
    start_passthrough(
        kafka,
        observers,
        output_dir / "passthrough.log",
        processes,
        PASSTHROUGH_TRIGGER_INTERVAL_SECONDS=str(SLOW_TRIGGER),
        PASSTHROUGH_MAX_RECORDS_PER_TRIGGER=str(SLOW_MAX_RECORDS),
    )
    start_generator(
        kafka,
        observers.source,
        output_dir / "generator.log",
        processes,
        GENERATOR_TOTAL="0",
        GENERATOR_RATE=str(SLOW_RATE),
        GENERATOR_SEED="37",
    )
    observer = observers.start(
        OBSERVER_PROFILE_ENABLED="false", OBSERVER_LAG_EVALUATION_WINDOW_SECONDS=str(EVALUATION_WINDOW)
    )

    def warned() -> dict[int, list[Doc]] | None:
        def warn(doc: Doc) -> bool:
            return bool(doc["evaluation"] == "warn")

        runs = {
            p: first_run(lag_docs(observers, p), warn, interval, lambda run: len(run) >= WARN_RUN)
            for p in PARTITIONS
        }
        if not all(runs.values()):
            return None
        text = observer.metrics()
        return runs if all(evaluation(text, observers.source, p) == "warn" for p in PARTITIONS) else None

    runs = cast(
        dict[int, list[Doc]],
        wait_until(warned, 90, interval=0.5, what=f"{WARN_RUN} consecutive warn measurements per partition"),
    )
    for partition, run in runs.items():
        # What the verdict rests on, read from the documents of the window before the first warn: the
        # passthrough still commits (no stall), never caught up, and its lag grew.
        first = moment(run[0]["observed_at"])
        window = [
            d
            for d in lag_docs(observers, partition)
            if d["status"] == "ok" and first - EVALUATION_WINDOW < moment(d["observed_at"]) <= first
        ]
        assert window[-1]["committed_offset"] > window[0]["committed_offset"], window
        assert all(d["lag_offsets"] > 0 for d in window), window
        assert window[-1]["lag_offsets"] > window[0]["lag_offsets"], window
