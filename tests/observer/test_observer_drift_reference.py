"""The pinned drift reference across a hand-over, end to end (generator processes → observer processes →
the real Elasticsearch): observer A pins a partition's reference from its first 2 windows and stops;
observer B, in the same group, takes the partition, loads the reference at once and scores a shifted
window against it, which its window-to-window score cannot (B has no previous window). And the store's
optimistic concurrency against the real node: a save based on an outdated version is refused."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from observer.conftest import ObserverFactory, assert_exact_cover, coverage, start_generator

from streamwatch_dev.chart import render_rule_files
from streamwatch_dev.elasticsearch import ElasticsearchNode
from streamwatch_dev.kafka import KafkaBroker
from streamwatch_dev.process import wait_until
from streamwatch_dev.services import ServiceProcess, metric_value
from streamwatch_observer.reference import reference_id
from streamwatch_observer.sink import ObservationSink, ReferenceConflict, reference_index

WINDOW = 200
REFERENCE_WINDOWS = 2
MIN_RECORDS = 150  # a 200-record window holds ~2 unparseable records (the generator's 1 %)


def chart_reference_threshold(target: Path) -> float:
    """The score above which the chart's default ``field drift from reference`` alert fires, as rendered."""
    (rule_file,) = [p for p in render_rule_files(target) if p.name == "observer.rules.yaml"]
    groups = yaml.safe_load(rule_file.read_text())["groups"]
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}
    expr = " ".join(rules["field drift from reference"]["expr"].split())
    shape = (
        r"max by \(namespace, job, topic, partition, field\) \(observer_field_drift_reference\{[^}]*\}\)"
        r" > [0-9.]+"
    )
    assert re.fullmatch(shape, expr), expr
    return float(expr.rsplit(">", 1)[1])


def reference_windows(process: ServiceProcess, topic: str) -> float | None:
    return metric_value(
        process.metrics(), "observer_drift_reference_windows", job="passthrough", topic=topic, partition="0"
    )


def test_a_new_owner_loads_the_pinned_reference_and_scores_a_shift_against_it(
    kafka: KafkaBroker,
    elasticsearch: ElasticsearchNode,
    observers: ObserverFactory,
    output_dir: Path,
    processes: list[Any],
) -> None:
    threshold = chart_reference_threshold(output_dir / "rules")
    kafka.create_topic(observers.topic, 1)
    settings = {
        "OBSERVER_WINDOW_RECORDS": str(WINDOW),
        "OBSERVER_WINDOW_SECONDS": "600",  # windows close by count only, so their edges are known
        "OBSERVER_PROFILE_ENABLED": "false",
        "OBSERVER_DRIFT_MIN_RECORDS": str(MIN_RECORDS),
        "OBSERVER_DRIFT_REFERENCE_WINDOWS": str(REFERENCE_WINDOWS),
    }
    first = observers.start("observer-a", **settings)
    steady = start_generator(
        kafka,
        observers.topic,
        output_dir / "generator-steady.log",
        processes,
        GENERATOR_TOTAL=str(REFERENCE_WINDOWS * WINDOW),
        GENERATOR_RATE="0",
        GENERATOR_SEED="31",
    )
    assert steady.wait(60) == 0
    wait_until(
        lambda: len(observers.docs("window")) == REFERENCE_WINDOWS, 30, what="the reference windows written"
    )
    assert reference_windows(first, observers.topic) == REFERENCE_WINDOWS
    doc_id = reference_id("passthrough", observers.topic, 0, "initial")
    stored = elasticsearch.request("GET", f"/{reference_index(observers.index)}/_doc/{doc_id}")
    assert stored["_source"]["pinned"] is True and stored["_source"]["windows"] == REFERENCE_WINDOWS
    assert stored["_source"]["merged_until"] == REFERENCE_WINDOWS * WINDOW - 1
    assert all(w["drift_reference"] == {} for w in observers.docs("window"))  # built, not scored
    assert first.stop() == 0

    second = observers.start("observer-b", **settings)
    # Loaded from Elasticsearch as soon as the partition is assigned, before any window of its own.
    shown = wait_until(lambda: reference_windows(second, observers.topic), 30, what="the reference loaded")
    assert shown == REFERENCE_WINDOWS
    (loaded,) = second.events("drift_reference_loaded")
    assert loaded["stored"] is True and loaded["pinned"] is True

    shifted = start_generator(
        kafka,
        observers.topic,
        output_dir / "generator-shifted.log",
        processes,
        GENERATOR_TOTAL=str(WINDOW),
        GENERATOR_RATE="0",
        GENERATOR_SEED="32",
        GENERATOR_SHIFT_AFTER_RECORDS="0",
        GENERATOR_SHIFT_FIELD="page",
    )
    assert shifted.wait(60) == 0
    wait_until(lambda: len(observers.docs("window")) == REFERENCE_WINDOWS + 1, 30, what="the shifted window")
    windows = sorted(observers.docs("window"), key=lambda d: d["start_offset"])
    assert_exact_cover(coverage(windows)[0], (REFERENCE_WINDOWS + 1) * WINDOW)
    last = windows[-1]
    assert last["replica"] == "observer-b"
    assert last["drift"] == {}, "the new owner has no previous window to compare with"
    assert last["drift_reference"]["page"] > threshold, last["drift_reference"]
    assert last["drift_reference_max"] == max(last["drift_reference"].values())
    gauge = metric_value(
        second.metrics(),
        "observer_field_drift_reference",
        job="passthrough",
        topic=observers.topic,
        partition="0",
        field="page",
    )
    assert gauge == last["drift_reference"]["page"]
    assert reference_windows(second, observers.topic) == REFERENCE_WINDOWS  # pinned: unchanged


def test_a_save_based_on_an_outdated_version_is_refused(elasticsearch: ElasticsearchNode) -> None:
    sink = ObservationSink(elasticsearch.client(), f"obs-{secrets.token_hex(4)}", replicas=0)
    assert sink.get_reference("p-0-initial") is None  # no index yet: nothing stored
    sink.ensure_template()
    first = sink.put_reference("p-0-initial", {"windows": 1}, None)
    with pytest.raises(ReferenceConflict):
        sink.put_reference("p-0-initial", {"windows": 1}, None)  # created meanwhile by another owner
    second = sink.put_reference("p-0-initial", {"windows": 2}, first)
    with pytest.raises(ReferenceConflict):
        sink.put_reference("p-0-initial", {"windows": 9}, first)  # a stale owner
    stored = sink.get_reference("p-0-initial")
    assert stored == ({"windows": 2}, second)
    settings = elasticsearch.request("GET", f"/{sink.reference_index}/_settings")
    assert settings[sink.reference_index]["settings"]["index"]["number_of_replicas"] == "0"
