"""The jobs an observer reports lag for (``OBSERVER_WATCHED_JOBS``): a checkpoint that cannot work and a
repeated name are refused at start in one line that names the variable and the job; each source
partition of a watched job has exactly one reporting observed partition, whatever the two counts."""

from __future__ import annotations

import pytest
from observer.units import unit_settings
from pydantic import ValidationError

from streamwatch_common.settings import settings_error_line
from streamwatch_observer.jobs import owner_of
from streamwatch_observer.settings import ObserverSettings


def refusal(**overrides: object) -> str:
    with pytest.raises(ValidationError) as caught:
        unit_settings(**overrides)
    return settings_error_line(ObserverSettings, caught.value)


def job(name: str, checkpoint: str = "s3://ckpt/x", topic: str = "visits") -> dict[str, str]:
    return {"name": name, "checkpoint": checkpoint, "source_topic": topic}


def test_the_observed_job_comes_first_then_the_watched_ones_in_order() -> None:
    settings = unit_settings(watched_jobs=[job("sessions"), job("audit", "file:///ckpt/audit", "audit")])
    assert [(j.name, j.checkpoint, j.source_topic) for j in settings.jobs()] == [
        ("passthrough", "/checkpoint", "visits"),
        ("sessions", "s3://ckpt/x", "visits"),
        ("audit", "file:///ckpt/audit", "audit"),
    ]
    assert unit_settings().jobs()[1:] == []
    # The observed job's name keeps the looser rule `OBSERVER_JOB` always had (a watched job's would
    # refuse the space): listing the jobs must not stop an observer that started.
    assert unit_settings(job="visits copy").jobs()[0].name == "visits copy"


@pytest.mark.parametrize(
    ("jobs", "words"),
    [
        ([job("sessions", "hdfs://nn/ckpt")], ["job 'sessions'", "unknown scheme 'hdfs'"]),
        ([job("sessions", "s3:///ckpt")], ["job 'sessions'", "names no bucket"]),
        ([job("sessions"), job("sessions")], ["sessions given twice"]),
        ([job("passthrough")], ["passthrough given twice"]),
        ([job("a"), {"name": "x", "checkpoint": "s3://a/b"}], ["[1].source_topic: required but not set"]),
    ],
)
def test_a_job_that_cannot_be_read_or_told_apart_stops_the_observer_naming_it(
    jobs: list[dict[str, str]], words: list[str]
) -> None:
    line = refusal(watched_jobs=jobs)
    assert line.startswith("configuration error: OBSERVER_WATCHED_JOBS"), line
    assert all(word in line for word in words), line


@pytest.mark.parametrize(("source", "observed"), [(2, 2), (6, 2), (2, 4), (5, 3)])
def test_every_source_partition_has_one_reporter_among_the_observed_partitions(
    source: int, observed: int
) -> None:
    owners = {p: owner_of(p, observed) for p in range(source)}
    assert set(owners.values()) <= set(range(observed))
    # Spread: no observed partition reports more than its share, rounded up.
    counts = [list(owners.values()).count(o) for o in range(observed)]
    assert max(counts) <= -(-source // observed)
