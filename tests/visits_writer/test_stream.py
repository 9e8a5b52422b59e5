"""The visits writer as a real process: broker → Spark (local) → Delta, with the generator's bad rows.

Exactly-once across a crash (SIGKILL of the whole process tree), a SIGTERM in the middle of a backlog and
the restarts from the checkpoint; dead letters with reasons; every edge record where the shared rule puts
it (the run-through of ``test_verdicts_on_both_paths.py``, on the same processes); pushes to the
Pushgateway; SIGTERM → exit 0.

After a SIGTERM every batch written to Delta is committed in the checkpoint (``commits/N``), so the restart
replays nothing: the Delta transaction check would hide a replay from the tables, not from the checkpoint's
lag or from the ``replayed`` flag of ``batch_written``.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from visits_writer.stack import (
    PeakRss,
    WriterPaths,
    assert_each_offset_once,
    kill_tree,
    run_generator,
    start_generator,
    start_writer,
    wait_rows,
    writer_env,
    written,
)
from visits_writer.verdicts import assert_edge_records_landed, produce_edge_records

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Pushgateway
from streamwatch_dev.services import ServiceProcess, metric_value
from streamwatch_dev.spark import CONNECTORS, newest_committed

pytestmark = pytest.mark.spark

# Generator records after the crash: with the 400 and the edge records, over five batches of 200 to go.
BACKLOG = 600


@pytest.mark.parametrize("connector", CONNECTORS)
def test_exactly_once_across_a_crash_with_dead_letters(
    kafka: KafkaBroker, pushgateway: Pushgateway, output_dir: Path, connector: str
) -> None:
    topic = kafka.create_topic(partitions=2)
    paths = WriterPaths(output_dir)
    run_generator(kafka, topic, output_dir / "generator-1.log", total=800, seed=7)
    env = writer_env(kafka, topic, paths, connector, VISITS_WRITER_PUSHGATEWAY_URL=pushgateway.url)

    # delta-spark's first append loads and compiles much more than delta-rs's: minutes on a busy 2-core box.
    slow = 300 if connector == "jvm" else 120
    started = time.monotonic()
    writer = start_writer(output_dir / "writer-1.log", env)
    rss = PeakRss(writer.pid)
    first = writer.wait_for_event("batch_written", timeout=slow)[0]
    first_batch_latency = time.monotonic() - started
    # Crash in the middle of the backlog (200 records per batch, 800 waiting) at once: batch_written is
    # logged after the Delta commits, and reading the tables first gave the Python path time to finish.
    kill_tree(writer)
    visits, dead = written(paths)
    at_crash = len(visits) + len(dead)
    assert 0 < at_crash < 800, at_crash

    run_generator(kafka, topic, output_dir / "generator-2.log", total=400, seed=8)
    edge = produce_edge_records(kafka, topic, partition=0)
    # A backlog of several batches (200 records each): the SIGTERM after the first lands in its middle.
    run_generator(kafka, topic, output_dir / "generator-3.log", total=BACKLOG, seed=11)
    produced = sum(kafka.end_offsets(topic).values())
    assert produced == 1200 + len(edge) + BACKLOG

    # SIGTERM mid-backlog: the running batch finishes and is committed, no later one starts.
    writer = start_writer(output_dir / "writer-2.log", env)
    writer.wait_for_event("batch_written", timeout=slow)
    writer.signal(signal.SIGTERM)
    assert writer.wait(60) == 0, writer.tail()
    assert [e["batch_committed"] for e in writer.events("query_stopped")] == [True]
    # The checkpoint commits exactly the rows in the tables, each offset once.
    stopped_at = assert_each_offset_once(paths, newest_committed(paths.checkpoint, topic))
    assert 0 < sum(map(len, stopped_at)) < produced, "stopped mid-backlog"

    restarted = time.monotonic()
    writer = start_writer(output_dir / "writer-3.log", env)
    rss2 = PeakRss(writer.pid)
    wait_rows(paths, produced, slow)
    caught_up = time.monotonic() - restarted
    time.sleep(2)  # a few more (empty) triggers must not add anything
    visits, dead = assert_each_offset_once(paths, kafka.end_offsets(topic))
    assert_edge_records_landed(paths, 0, edge, connector)
    dead = [r for r in dead if not (r["partition"] == 0 and r["offset"] in edge)]  # the generator's
    reasons = Counter(r["reason"] for r in dead)
    assert reasons["unparseable"] > 0 and reasons["missing_required_field"] > 0, reasons
    assert all(r["detail"] for r in dead)
    missing_detail = {r["detail"] for r in dead if r["reason"] == "missing_required_field"}
    assert missing_detail <= {
        "event_time",
        "user_id",
        "page",
        "event_time,user_id",
        "event_time,page",
        "user_id,page",
        "event_time,user_id,page",
    }, missing_detail

    text = writer.metrics()
    assert (metric_value(text, "visits_writer_dead_letters_total", reason="unparseable") or 0) > 0
    assert (metric_value(text, "streamwatch_pushes_total", job="visits_to_delta_synchronizer") or 0) > 0
    assert f'instance="{paths.instance}"' in pushgateway.metrics_text()

    replayed = [b["batch_id"] for b in writer.events("batch_written") if b["replayed"]]
    assert replayed == [], "batches written before the SIGTERM were replayed"

    writer.signal(signal.SIGTERM)
    assert writer.wait(60) == 0, writer.tail()
    assert writer.events("query_stopped")
    # Spark's idle Python planning daemons are stopped at the first batch; the jvm connector has none.
    stopped = writer.events("planner_daemons_stopped")
    assert len(stopped) == 1, stopped
    planned = {"jvm": set(), "python": {"pyspark.sql.worker.plan_data_source_read"}}[connector]
    assert planned <= set(stopped[0]["modules"]), stopped

    batches = writer.events("batch_written")
    busy = [b for b in batches if b["records"] > 0]
    rows = sum(b["records"] for b in busy)
    busy_seconds = sum(b["seconds"] for b in busy)
    print(
        f"\n{connector}: first batch: {first_batch_latency:.1f}s after start ({first['records']} records, "
        f"{first['seconds']}s in the batch); rows before crash: {at_crash}; catch-up after the SIGTERM: "
        f"{caught_up:.1f}s; batch seconds (restart run): {[b['seconds'] for b in busy]}; "
        f"rows/s inside batches: {rows / busy_seconds:.0f}; peak RSS: {rss.stop() / 2**20:.0f} MiB, "
        f"{rss2.stop() / 2**20:.0f} MiB; dead letters: {dict(reasons)}"
    )


def _pushed_batch_id(gateway: Pushgateway, instance: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(gateway.metrics_text()):
        for sample in family.samples:
            if sample.name == "visits_sync_batch_id" and sample.labels.get("instance") == instance:
                return float(sample.value)
    return None


def _counter(writer: ServiceProcess, name: str) -> float:
    return metric_value(writer.metrics(), name, job="visits_to_delta_synchronizer") or 0.0


def test_pushgateway_outage_costs_only_pushes(kafka: KafkaBroker, output_dir: Path) -> None:
    gateway = Pushgateway.start(output_dir)
    topic = kafka.create_topic(partitions=2)
    paths = WriterPaths(output_dir)
    generator = start_generator(kafka, topic, output_dir / "generator.log", rate=30)
    env = writer_env(
        kafka,
        topic,
        paths,
        VISITS_WRITER_PUSHGATEWAY_URL=gateway.url,
        VISITS_WRITER_PUSH_TIMEOUT_SECONDS="1",
        VISITS_WRITER_TRIGGER_INTERVAL_SECONDS="1",
    )
    writer = start_writer(output_dir / "writer.log", env)
    try:
        wait_until(lambda: _pushed_batch_id(gateway, paths.instance) is not None, 120, what="first push")
        gateway.stop()
        rows_at_outage = sum(map(len, written(paths)))
        failures_before = _counter(writer, "streamwatch_push_failures_total")
        wait_until(
            lambda: _counter(writer, "streamwatch_push_failures_total") >= failures_before + 2,
            90,
            what="push failures counted",
        )
        # The job kept going: more rows landed during the outage, and it is still ready.
        wait_rows(paths, rows_at_outage + 1, 60)
        assert writer.running and writer.events("push_failed")
        pushes_before = _counter(writer, "streamwatch_pushes_total")
        last_batch = max(b["batch_id"] for b in writer.events("batch_written"))

        gateway.restart()
        wait_until(
            lambda: (_pushed_batch_id(gateway, paths.instance) or -1) > last_batch, 90, what="pushes resumed"
        )
        assert _counter(writer, "streamwatch_pushes_total") > pushes_before
        writer.signal(signal.SIGTERM)
        assert writer.wait(60) == 0, writer.tail()
    finally:
        generator.stop()
        writer.stop()
        gateway.stop()
