"""The source offsets in the passthrough's pushed batch metrics, for both connectors, against a real broker,
local Spark and a real Pushgateway.

Everything is produced before the job starts and read 100 records per trigger, so every batch but the
last ends behind the newest offsets, by an amount this test knows (produced minus the batch's end). For
each batch: the end offsets are the checkpoint's, the offsets behind latest are the produced ones less the
end, and with Spark's JVM Kafka source they also equal what that source reports itself
(``minOffsetsBehindLatest`` ...). After the last batch the Pushgateway holds
``streaming_batch_source_end_offset{topic, partition}`` at the topic's end and nothing behind.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from passthrough.test_passthrough import PATHS, _env, _records

from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Pushgateway
from streamwatch_dev.services import ServiceProcess, metric_value
from streamwatch_dev.spark import newest_committed

pytestmark = pytest.mark.spark

PRODUCED = {0: 300, 1: 120}


@pytest.mark.parametrize(("connector", "copy_path"), PATHS)
def test_pushed_source_offsets_per_batch_match_the_checkpoint_and_the_backlog(
    kafka: KafkaBroker, pushgateway: Pushgateway, output_dir: Path, connector: str, copy_path: str
) -> None:
    source, target = kafka.create_topic(partitions=2), kafka.create_topic(partitions=2)
    for partition, count in PRODUCED.items():
        kafka.produce(source, _records(partition, 0, count), partition=partition)
    checkpoint = output_dir / "checkpoint"
    instance = f"offsets-{connector}-{copy_path}"
    env = _env(
        kafka,
        source,
        target,
        checkpoint,
        connector,
        copy_path=copy_path,
        PASSTHROUGH_MAX_RECORDS_PER_TRIGGER="100",
        PASSTHROUGH_PUSHGATEWAY_URL=pushgateway.url,
        PASSTHROUGH_INSTANCE=instance,
    )
    job = ServiceProcess("streamwatch-passthrough", output_dir / "passthrough.log", env)
    job.start_ready(timeout=180, path="/readyz")
    try:
        wait_until(
            lambda: newest_committed(checkpoint, source) == PRODUCED, 240, what="all 420 records committed"
        )
        labels = {"job": "passthrough", "instance": instance}

        def pushed(name: str, **more: str) -> float | None:
            return metric_value(pushgateway.metrics_text(), name, **labels, **more)

        wait_until(
            lambda: (
                [
                    pushed("streaming_batch_source_end_offset", topic=source, partition=str(p))
                    for p in PRODUCED
                ]
                == [float(n) for n in PRODUCED.values()]
            ),
            30,
            what="the last batch's end offsets pushed",
        )
        assert pushed("streaming_batch_offsets_behind_latest_max") == 0
        assert pushed("streaming_batch_offsets_behind_latest_min") == 0

        batches = job.events("batch_progress")
        assert len(batches) >= 5, "420 records, at most 100 per trigger"
        assert sum(b["input_rows"] for b in batches) == sum(PRODUCED.values())
        compared_with_spark = 0
        for batch in batches:
            ends = {p: batch["end_offsets"][f"{source}/{p}"] for p in PRODUCED}
            committed = json.loads(
                (checkpoint / "offsets" / str(batch["batch_id"])).read_text().splitlines()[-1]
            )
            assert {str(p): e for p, e in ends.items()} == committed[source], batch
            behind = [PRODUCED[p] - ends[p] for p in sorted(PRODUCED)]
            expected = {"min": min(behind), "avg": sum(behind) / len(behind), "max": max(behind)}
            assert batch["offsets_behind_latest"] == expected, batch
            (spark_metrics,) = batch["source_metrics"]
            if connector == "jvm":
                assert int(spark_metrics["minOffsetsBehindLatest"]) == expected["min"], batch
                assert int(spark_metrics["maxOffsetsBehindLatest"]) == expected["max"], batch
                assert float(spark_metrics["avgOffsetsBehindLatest"]) == expected["avg"], batch
                compared_with_spark += 1
        assert compared_with_spark == (len(batches) if connector == "jvm" else 0)
        assert any(b["offsets_behind_latest"]["max"] > 0 for b in batches), "a batch ended behind"
        assert not job.events("progress_unreadable"), job.events("progress_unreadable")
        shown = [(b["batch_id"], b["offsets_behind_latest"], b["source_metrics"]) for b in batches]
        print(f"\n{connector}: {shown}")
    finally:
        job.signal(signal.SIGTERM)
        assert job.wait(60) == 0
