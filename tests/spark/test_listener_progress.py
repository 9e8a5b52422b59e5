"""The SLA listener reads each progress as one JSON text, not field by field over Py4J (issue 21).

A real query on Spark's ``rate`` source, a real Pushgateway: the pusher receives every batch, the progress
it reads holds what pyspark's own (slow) conversion gives, and reading it costs three Py4J round trips
where pyspark's conversion makes hundreds.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from py4j.java_gateway import GatewayClient  # type: ignore[import-untyped]
from pyspark.sql import SparkSession
from pyspark.sql.streaming.listener import StreamingQueryProgress

from streamwatch_common.spark.batch_metric_names import STREAMING_BATCH
from streamwatch_common.spark.batch_metrics import BatchMetrics
from streamwatch_common.spark.listener import BatchMetricsPusher, progress_from_json
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Pushgateway


class _Recording(BatchMetricsPusher):
    """The real pusher, keeping each progress it was handed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.progresses: list[Any] = []

    def onQueryProgress(self, event: Any) -> None:
        self.progresses.append(event.progress)
        super().onQueryProgress(event)


def _comparable(progress: StreamingQueryProgress) -> dict[str, Any]:
    """What the listener reads of a progress, as plain values."""
    return {
        "metrics": BatchMetrics.from_progress(progress),
        "durationMs": dict(progress.durationMs),
        "sources": [
            # A source's rates are the JSON's, one decimal: not pushed.
            (s.description, s.numInputRows, round(s.inputRowsPerSecond), dict(s.metrics))
            for s in progress.sources
        ],
        "sink": (progress.sink.description, progress.sink.numOutputRows),
    }


def _py4j_commands(monkeypatch: pytest.MonkeyPatch, call: Any) -> int:
    """How many Py4J commands this thread sends while ``call`` runs."""
    sent = [0]
    send = GatewayClient.send_command
    me = threading.get_ident()

    def counting(self: GatewayClient, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == me:
            sent[0] += 1
        return send(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(GatewayClient, "send_command", counting)
        call()
    return sent[0]


def test_each_progress_is_read_as_json_with_what_pysparks_conversion_gives(
    spark: SparkSession, pushgateway: Pushgateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = f"job_{uuid.uuid4().hex[:6]}"
    pusher = _Recording(pushgateway.url, job=job, instance="pod-1", names=STREAMING_BATCH)
    spark.streams.addListener(pusher)
    query = (
        spark.readStream.format("rate").option("rowsPerSecond", 200).load()
        .writeStream.format("noop").trigger(processingTime="300 milliseconds").start()
    )  # fmt: skip
    try:
        wait_until(lambda: len(pusher.progresses) >= 4, 60, what="four progress events")
    finally:
        query.stop()
        spark.streams.removeListener(pusher)
        pusher.close()
    ids = [p.batchId for p in pusher.progresses]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
    jprogress = query._jsq.lastProgress()
    assert jprogress.batchId() == pusher.progresses[-1].batchId
    slow = StreamingQueryProgress.fromJObject(jprogress)
    fast = progress_from_json(jprogress)
    assert _comparable(fast) == _comparable(slow)
    assert _comparable(pusher.progresses[-1]) == _comparable(slow)
    assert fast.id == slow.id and fast.runId == slow.runId and fast.timestamp == slow.timestamp
    # The point of reading the JSON: the text and the two exact rates, where pyspark makes hundreds.
    assert _py4j_commands(monkeypatch, lambda: progress_from_json(jprogress)) <= 3
    assert _py4j_commands(monkeypatch, lambda: StreamingQueryProgress.fromJObject(jprogress)) > 100
