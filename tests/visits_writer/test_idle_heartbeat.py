"""Idle heartbeat, live: with no input, "visits synchronizer stalled" stays quiet for the idle job and fires
once the job is killed.

Visits writer (local Spark) on an empty topic, no generator → Pushgateway → Prometheus with the chart's
rules, rendered with a short ``alerts.stalled.afterSeconds`` and ``alerts.stalled.for``. The job pushes
nothing but its idle heartbeat (Spark's ``onQueryIdle``, at most once per
``spark.sql.streaming.noDataProgressEventInterval``). Everything is scaled down together: the interval
(Spark's default 10 s, set through ``VISITS_WRITER_SPARK_CONF`` as a user would) and the limit keep the
chart's kind of margin, a limit several intervals long. Over a stretch longer than the limit plus ``for``
plus a margin, Prometheus' own ``ALERTS`` history must hold nothing for the alert while the heartbeat
gauge keeps advancing; after SIGKILL the alert must go pending, then firing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from visits_writer.stack import Timeline, WriterPaths, kill_tree, start_writer, writer_env

from streamwatch_dev.chart import render_rule_files
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Prometheus, Pushgateway

pytestmark = pytest.mark.spark

ALERT = "visits synchronizer stalled"
JOB = "visits_to_delta_synchronizer"
IDLE_EVENT_INTERVAL_SECONDS = 3
# Room for two heartbeats to be late on a busy machine, and still short enough to be outlived several
# times below.
AFTER_SECONDS = 10
FOR_SECONDS = 3
# How long the idle job is watched: without a heartbeat the alert would be firing well before the end.
QUIET_SECONDS = 2 * (AFTER_SECONDS + FOR_SECONDS)


def test_stalled_alert_stays_quiet_while_idle_and_fires_once_killed(
    kafka: KafkaBroker, output_dir: Path
) -> None:
    rules = render_rule_files(
        output_dir / "rules",
        {
            "alerts.stalled.afterSeconds": AFTER_SECONDS,
            "alerts.stalled.for": f"{FOR_SECONDS}s",
            "alerts.slaMiss.thresholdMs": 3_600_000,
        },
    )
    gateway = Pushgateway.start(output_dir)
    prometheus = Prometheus.start(output_dir / "prometheus", rules, pushgateway=gateway.url)
    topic = kafka.create_topic(partitions=2)
    paths = WriterPaths(output_dir)
    env = writer_env(
        kafka,
        topic,
        paths,
        VISITS_WRITER_PUSHGATEWAY_URL=gateway.url,
        VISITS_WRITER_SPARK_CONF=json.dumps(
            {"spark.sql.streaming.noDataProgressEventInterval": f"{IDLE_EVENT_INTERVAL_SECONDS}s"}
        ),
    )
    selector = f'{{job="{JOB}", instance="{paths.instance}"}}'
    timeline = Timeline(prometheus, ALERT, f"time() - push_time_seconds{selector}")
    writer = None
    try:
        writer = start_writer(output_dir / "writer.log", env)
        timeline.note("writer ready on an empty topic")
        wait_until(
            lambda: prometheus.query(f"push_time_seconds{selector}"), 60, what="the first push scraped"
        )
        first_push = time.monotonic()
        timeline.note("first push seen by Prometheus")
        # Stay idle for QUIET_SECONDS after the first push; the alert's state is polled for the timeline,
        # the verdict is Prometheus' own record below.
        deadline = first_push + QUIET_SECONDS
        wait_until(
            lambda: timeline.poll() != "inactive" or time.monotonic() >= deadline,
            QUIET_SECONDS + 10,
            interval=1,
            what="the quiet stretch",
        )
        window = f"{QUIET_SECONDS}s"
        history = prometheus.query(f'max_over_time(ALERTS{{alertname="{ALERT}"}}[{window}])')
        assert history == [], f"the idle job was taken for a stalled one: {history}\n{timeline.render()}"
        age = prometheus.query(f"max_over_time((time() - push_time_seconds{selector})[{window}:1s])")
        assert age and float(age[0]["value"][1]) < AFTER_SECONDS, f"push age over the stretch: {age}"
        beats = prometheus.query(f"changes(visits_sync_idle_heartbeat_seconds{selector}[{window}])")
        # More beats than the default interval could give: the setting reached Spark.
        beats_at_default = QUIET_SECONDS / 10
        assert beats and float(beats[0]["value"][1]) > beats_at_default + 1, f"heartbeat changes: {beats}"
        # Nothing but heartbeats kept it fresh: no batch was read from the empty topic after the first.
        rows = prometheus.query(f"max_over_time(visits_sync_input_rows{selector}[{window}])")
        assert not rows or float(rows[0]["value"][1]) == 0, rows
        timeline.note(f"quiet for {QUIET_SECONDS}s; heartbeat changed {beats[0]['value'][1]} times")

        kill_tree(writer)
        timeline.note("writer killed (SIGKILL)")
        timeline.wait_for({"pending", "firing"}, AFTER_SECONDS + 60)
        timeline.wait_for({"firing"}, FOR_SECONDS + 60)
        assert timeline.was("pending") and timeline.was("firing"), timeline.render()
        (alert,) = prometheus.alerts(ALERT)
        assert alert["labels"]["instance"] == paths.instance
        print(f"\nalert timeline ({ALERT}, after {AFTER_SECONDS}s, for {FOR_SECONDS}s):\n{timeline.render()}")
    finally:
        if writer is not None:
            writer.stop()
        prometheus.stop()
        gateway.stop()
