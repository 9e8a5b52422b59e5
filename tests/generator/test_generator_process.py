"""The generator as a process: ops endpoints, readiness, SIGTERM, configuration errors, log lines."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from generator.support import StartGenerator, assert_every_line_is_json, read_rows, summary

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import free_port, wait_until
from streamwatch_dev.services import VENV_BIN, metric_value, service_env


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def delivered_in_metrics(metrics_text: str, partitions: int) -> float:
    return sum(
        metric_value(metrics_text, "generator_records_total", kind=kind, partition=str(p)) or 0
        for kind in ("valid", "missing_fields", "duplicate", "unparseable")
        for p in range(partitions)
    )


def test_not_ready_while_the_broker_is_unreachable(start_generator: StartGenerator) -> None:
    # Nothing listens on a freshly freed port: the producer cannot get metadata.
    process = start_generator(
        "visits", KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}", GENERATOR_TOPIC_WAIT_SECONDS="0.3"
    )
    assert process.wait_for_event("topic_metadata_failed", timeout=30)
    assert status(process.ops_url + "/healthz") == 200
    assert status(process.ops_url + "/readyz") == 503
    assert (metric_value(process.metrics(), "generator_client_errors_total") or 0) > 0
    process.signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert process.events("generator_summary")[0]["reason"] == "shutdown_before_start"
    assert_every_line_is_json(process.log_path)


def test_ops_endpoints_answer_and_metrics_count_deliveries(
    kafka: KafkaBroker, start_generator: StartGenerator
) -> None:
    topic = kafka.create_topic(partitions=2)
    process = start_generator(topic, GENERATOR_RATE="200")
    assert status(process.ops_url + "/healthz") == 200
    wait_until(lambda: status(process.ops_url + "/readyz") == 200, 30, what="generator ready")
    wait_until(lambda: delivered_in_metrics(process.metrics(), 2) >= 100, 30, what="100 records delivered")
    metrics = process.metrics()
    assert metric_value(metrics, "generator_records_total", kind="valid", partition="0") is not None
    assert metric_value(metrics, "generator_records_total", kind="unparseable", partition="1") is not None
    assert metric_value(metrics, "generator_delivery_failures_total") == 0
    assert status(process.ops_url + "/nope") == 404

    process.signal(signal.SIGTERM)
    assert process.wait(30) == 0
    report = summary(process)
    assert report["reason"] == "shutdown_requested"
    rows = read_rows(kafka, topic)
    assert len(rows) == report["delivered"] >= 100
    assert_every_line_is_json(process.log_path)


def test_sigterm_mid_production_every_delivered_record_is_in_the_topic(
    kafka: KafkaBroker, start_generator: StartGenerator
) -> None:
    topic = kafka.create_topic(partitions=3)
    # Batching with a long linger keeps many records in flight when SIGTERM arrives.
    process = start_generator(
        topic,
        GENERATOR_RATE="0",
        KAFKA_PRODUCER_PROPERTIES='{"linger.ms": 200, "batch.num.messages": 5000}',
    )
    wait_until(lambda: process.events("generator_started"), 30, what="production started")
    time.sleep(1.5)
    process.signal(signal.SIGTERM)
    assert process.wait(60) == 0

    (flushing,) = process.events("generator_flushing")
    assert flushing["in_flight"] > 0, "nothing was in flight at SIGTERM: the test proves nothing"
    report = summary(process)
    assert report["reason"] == "shutdown_requested"
    assert report["undelivered"] == 0 and report["delivery_failures"] == 0
    assert report["delivered"] == report["produced"] > 1000
    rows = read_rows(kafka, topic)
    assert len(rows) == report["delivered"]
    per_partition = {str(p): sum(1 for r in rows if r.partition == p) for p in range(3)}
    assert per_partition == report["by_partition"]
    # no gaps and nothing beyond what was counted
    for p in range(3):
        assert [r.offset for r in rows if r.partition == p] == list(range(report["by_partition"][str(p)]))
    assert kafka.end_offsets(topic) == {p: report["by_partition"][str(p)] for p in range(3)}
    assert_every_line_is_json(process.log_path)


def test_progress_lines_are_logged_periodically(kafka: KafkaBroker, start_generator: StartGenerator) -> None:
    topic = kafka.create_topic(partitions=1)
    process = start_generator(
        topic, GENERATOR_RATE="100", GENERATOR_TOTAL="250", GENERATOR_PROGRESS_INTERVAL_SECONDS="0.5"
    )
    assert process.wait(30) == 0
    progress = process.events("generator_progress")
    assert len(progress) >= 3
    delivered = [p["delivered"] for p in progress]
    assert delivered == sorted(delivered) and delivered[-1] < 250
    report = summary(process)
    assert report["delivered"] == 250
    # rate 100/s: 250 records take about 2.5 s, never much less
    assert report["elapsed_seconds"] >= 2.3


def run_generator_command(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "streamwatch-generator")],
        env=service_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_non_numeric_rate_exits_2_with_one_line(kafka: KafkaBroker) -> None:
    result = run_generator_command({**kafka.env(), "GENERATOR_RATE": "fast"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "GENERATOR_RATE" in lines[0] and "fast" in lines[0]
    assert result.stdout == ""


def test_missing_bootstrap_servers_exits_2_with_one_line() -> None:
    result = run_generator_command({})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "KAFKA_BOOTSTRAP_SERVERS" in lines[0] and "required" in lines[0]


def test_skew_partition_the_topic_lacks_exits_2(kafka: KafkaBroker, output_dir: Path) -> None:
    topic = kafka.create_topic(partitions=2)
    env = {**kafka.env(), "GENERATOR_TOPIC": topic, "GENERATOR_SKEW_PARTITION": "5", "OPS_PORT": "0"}
    result = run_generator_command(env)
    (output_dir / "stdout.log").write_text(result.stdout)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "GENERATOR_SKEW_PARTITION" in lines[0], result.stderr


def test_settings_table_lists_generator_variables() -> None:
    from streamwatch_common.settings_doc import render

    table = render()
    for variable in ("GENERATOR_RATE", "GENERATOR_TOTAL", "GENERATOR_SKEW_MODE", "GENERATOR_SEED"):
        assert f"| `{variable}` |" in table


def test_sigterm_while_the_broker_is_gone_exits_promptly_and_reports_what_was_lost(
    start_generator: StartGenerator, output_dir: Path
) -> None:
    broker = KafkaBroker.start(output_dir / "own-broker")  # this test kills it
    try:
        topic = broker.create_topic(partitions=2)
        process = start_generator(
            topic,
            KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
            GENERATOR_RATE="0",
            GENERATOR_FLUSH_TIMEOUT_SECONDS="2",
            GENERATOR_DELIVERY_STALL_SECONDS="1",
            KAFKA_PRODUCER_PROPERTIES='{"queue.buffering.max.messages": 2000}',
        )
        wait_until(lambda: process.events("generator_started"), 30, what="production started")
        assert not process.events("delivery_stalled"), "reported a stall while the broker answered"
        broker.stop()
        # The client queue fills up (produce() now waits on a full buffer) and no report comes back.
        wait_until(lambda: process.events("delivery_stalled"), 30, what="the stall reported")
        stalls = process.events("delivery_stalled")
        assert stalls[0]["in_flight"] > 0 and stalls[0]["seconds_without_delivery"] >= 1
        assert (metric_value(process.metrics(), "generator_delivery_stalls_total") or 0) >= 1
        process.signal(signal.SIGTERM)
        assert process.wait(30) == 1  # records were lost: not a clean exit
        report = summary(process)
        assert report["reason"] == "shutdown_requested"
        assert report["undelivered"] > 0
        assert report["delivered"] + report["undelivered"] + report["delivery_failures"] == report["produced"]
        assert process.events("flush_incomplete")
        assert_every_line_is_json(process.log_path)
    finally:
        broker.stop()


def test_metrics_match_what_a_consumer_reads_per_partition_and_kind(
    kafka: KafkaBroker, start_generator: StartGenerator
) -> None:
    topic = kafka.create_topic(partitions=3)
    process = start_generator(
        topic,
        GENERATOR_RATE="0",
        GENERATOR_TOTAL="2000",
        GENERATOR_EXIT_WHEN_DONE="false",
        GENERATOR_MISSING_FIELDS_PERCENT="10",
        GENERATOR_DUPLICATE_PERCENT="10",
        GENERATOR_UNPARSEABLE_PERCENT="10",
    )
    process.wait_for_event("generator_idle", timeout=60)
    assert process.running  # still serving /metrics after the run
    metrics = process.metrics()
    report = summary(process)
    rows = read_rows(kafka, topic)
    assert len(rows) == 2000
    # Batched acknowledgements carry each record's own offset: none is taken for a repeat.
    assert metric_value(metrics, "generator_acknowledged_offset_repeats_total") == 0
    assert report["acknowledged_offset_repeats"] == 0
    for p in range(3):
        read = sum(1 for r in rows if r.partition == p)
        counted = {
            kind: metric_value(metrics, "generator_records_total", kind=kind, partition=str(p))
            for kind in ("valid", "missing_fields", "duplicate", "unparseable")
        }
        assert sum(v or 0 for v in counted.values()) == read == report["by_partition"][str(p)]
        assert counted == {k: float(v) for k, v in report["by_partition_and_kind"][str(p)].items()}
    process.signal(signal.SIGTERM)
    assert process.wait(30) == 0
