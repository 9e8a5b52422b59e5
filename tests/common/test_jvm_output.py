"""The Spark JVM's console output becomes the service's JSON log lines (container logs hold only JSON)."""

from __future__ import annotations

import json

import pytest

from streamwatch_common.logs import configure_logging
from streamwatch_common.spark.jvm_output import relay_lines

pytestmark = pytest.mark.usefixtures("restore_logging")

JVM_OUTPUT = [
    b"WARNING: Using incubator modules: jdk.incubator.vector\n",
    b"Using Spark's default log4j profile: org/apache/spark/log4j2-defaults.properties\n",
    b"26/11/28 20:44:16 WARN ProcessingTimeExecutor: Current batch is falling behind.\n",
    b"26/11/28 20:44:17 ERROR MicroBatchExecution: Query failed\n",
    b"java.lang.IllegalStateException: boom\n",
    b"\tat org.apache.spark.Foo.bar(Foo.scala:1)\n",
    b"\n",
    b'{"ts": "2026-11-28T20:44:18.000+00:00", "level": "INFO", "event": "worker_said"}\n',
    b"\xff\xfe not utf-8\n",
]


def test_every_line_of_jvm_output_becomes_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("passthrough", "json", "INFO")
    relay_lines(JVM_OUTPUT)
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(docs) == len(JVM_OUTPUT) - 1  # the blank line is dropped
    warn, error, exception, frame = docs[2:6]
    assert (warn["level"], warn["jvm_logger"], warn["text"]) == (
        "WARNING",
        "ProcessingTimeExecutor",
        "Current batch is falling behind.",
    )
    assert error["level"] == "ERROR" and error["jvm_logger"] == "MicroBatchExecution"
    # a stack trace keeps the level of the error it belongs to
    assert exception["level"] == "ERROR" and exception["text"] == "java.lang.IllegalStateException: boom"
    assert frame["level"] == "ERROR" and frame["text"].startswith("\tat org.apache.spark")
    assert docs[0]["event"] == "jvm_log" and docs[0]["service"] == "passthrough"
    assert docs[6] == {"ts": "2026-11-28T20:44:18.000+00:00", "level": "INFO", "event": "worker_said"}
    assert "not utf-8" in docs[7]["text"]


def test_jvm_debug_lines_follow_the_service_log_level(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("passthrough", "json", "WARNING")
    relay_lines([b"26/11/28 20:44:16 INFO SparkContext: Running Spark version 4.2.0\n"])
    assert capsys.readouterr().out == ""
