"""The opt-in null counts and the source offsets of a real visits writer run reach the Pushgateway.

Generator (known share of rows with required fields nulled) plus a few hand-made blank values → broker →
visits writer (local Spark, Python connector, ``VISITS_WRITER_OBSERVE_NULL_COUNTS=true``) → Pushgateway.
Everything is produced before the writer starts and one trigger may read all of it, so the one batch's
pushed counts are the whole topic's; they must equal what the shared Arrow rule finds in the records read
back from the topic, and what the writer's own dead-letter table says is missing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from visits_writer.records import encode, visit
from visits_writer.stack import WriterPaths, run_generator, start_writer, writer_env, written

from streamwatch_common.visit_record import DEFAULT_REQUIRED_FIELDS, classify_values
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.prometheus import Pushgateway
from streamwatch_dev.services import metric_value

pytestmark = pytest.mark.spark

JOB = "visits_to_delta_synchronizer"
REQUIRED = list(DEFAULT_REQUIRED_FIELDS)


def pushed(gateway: Pushgateway, name: str, instance: str, **labels: str) -> float | None:
    return metric_value(gateway.metrics_text(), name, job=JOB, instance=instance, **labels)


def test_observed_null_counts_and_end_offsets_of_a_real_run(
    kafka: KafkaBroker, pushgateway: Pushgateway, output_dir: Path
) -> None:
    topic = kafka.create_topic(partitions=2)
    # The generator's default shares: 5 % of rows with a random non-empty set of required fields nulled.
    run_generator(kafka, topic, output_dir / "generator.log", total=400, seed=11)
    blanks = [visit(1, page="  "), visit(2, user_id="\t"), visit(3, user_id=" ", page="")]
    kafka.produce(topic, [(b"blank", encode(r)) for r in blanks], partition=0)
    values = [m.value() for m in kafka.read_all(topic, expected=403)]
    assert len(values) == 403
    missing = classify_values(values, REQUIRED).missing.to_pylist()
    per_field = Counter(name for row in missing for name in row.split(",") if name)
    expected = {name: per_field[name] for name in REQUIRED}
    assert all(count > 3 for count in expected.values()), f"the generator nulled each field: {expected}"

    paths = WriterPaths(output_dir)
    env = writer_env(
        kafka,
        topic,
        paths,
        VISITS_WRITER_PUSHGATEWAY_URL=pushgateway.url,
        VISITS_WRITER_OBSERVE_NULL_COUNTS="true",
        VISITS_WRITER_MAX_RECORDS_PER_TRIGGER="100000",
    )
    writer = start_writer(output_dir / "writer.log", env)
    try:
        (batch,) = writer.wait_for_event("batch_written", timeout=180)
        assert batch["records"] == 403, "one batch read the whole topic"
        name = "visits_sync_observed_null_values"
        wait_until(
            lambda: all(pushed(pushgateway, name, paths.instance, field=f) is not None for f in REQUIRED),
            30,
            what="observed null counts pushed",
        )
        observed = {f: pushed(pushgateway, name, paths.instance, field=f) for f in REQUIRED}
        assert observed == expected, "observe counts what the Arrow rule finds in the records read back"

        # The writer's own verdicts (Arrow path): dead letters naming each missing field.
        _visits, dead = written(paths)
        named = Counter(f for row in dead if row["detail"] and row["reason"] == "missing_required_field"
                        for f in row["detail"].split(","))  # fmt: skip
        assert {f: named[f] for f in REQUIRED} == expected

        ends = kafka.end_offsets(topic)
        for partition, end in ends.items():
            value = pushed(
                pushgateway, "visits_sync_source_end_offset", paths.instance, topic=topic,
                partition=str(partition),
            )  # fmt: skip
            assert value == end, f"end offset of {topic}/{partition}"
        for stat in ("min", "avg", "max"):
            assert pushed(pushgateway, f"visits_sync_offsets_behind_latest_{stat}", paths.instance) == 0
        (progress,) = writer.events("batch_progress")
        assert progress["observed"] == expected and progress["batch_id"] == batch["batch_id"]
        assert not writer.events("progress_unreadable"), writer.events("progress_unreadable")
    finally:
        writer.stop()
