"""``observer.watchedJobs`` in the chart: the observer gets the jobs as ``OBSERVER_WATCHED_JOBS`` (which
its settings accept as rendered) and the object store's connection, the passthrough nothing new; a
repeated name, or the observer's own job's, and a checkpoint of another scheme are refused naming the
value. With none declared, the observer watches the passthrough alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamwatch_dev.chart import render
from streamwatch_dev.workloads import service_containers
from streamwatch_observer.settings import ObserverSettings

SESSIONS = {"name": "sessions", "checkpoint": "s3a://checkpoints/sessions", "sourceTopic": "visits"}
AUDIT = {"name": "audit.v2", "checkpoint": "s3://checkpoints/audit", "sourceTopic": "audit",
         "alerts": {"lagThresholdOffsets": 500}}  # fmt: skip


def rendered(tmp_path: Path, jobs: list[dict[str, Any]], **values: Any) -> list[dict[str, Any]]:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"observer": {"watchedJobs": jobs}, **values}))
    return render(values_files=[path])


def env(manifests: list[dict[str, Any]], service: str) -> dict[str, Any]:
    (c,) = [c for c in service_containers(manifests, service) if not c.init]
    return c.env()


def test_watched_jobs_reach_the_observer_as_its_settings_read_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = {"endpoint": "http://seaweedfs.storage:8333", "credentialsSecret": {"name": "checkpoint-store"}}
    manifests = rendered(tmp_path, [SESSIONS, AUDIT], objectStore=store)
    observer = env(manifests, "observer")
    declared = json.loads(observer["OBSERVER_WATCHED_JOBS"]["value"])
    assert declared == [
        {"name": "sessions", "checkpoint": "s3a://checkpoints/sessions", "source_topic": "visits"},
        {"name": "audit.v2", "checkpoint": "s3://checkpoints/audit", "source_topic": "audit"},
    ]
    assert observer["S3_ENDPOINT_URL"]["value"] == "http://seaweedfs.storage:8333"
    assert observer["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "checkpoint-store"
    # The passthrough's checkpoint is still its volume: it gets no store.
    assert not [n for n in env(manifests, "passthrough") if n.startswith(("S3_", "AWS_"))]
    # What the observer makes of the rendered value: the passthrough first, then the two, as declared.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("ELASTICSEARCH_URL", "http://es:9200")
    monkeypatch.setenv("OBSERVER_WATCHED_JOBS", observer["OBSERVER_WATCHED_JOBS"]["value"])
    settings = ObserverSettings()
    assert [(j.name, j.checkpoint, j.source_topic) for j in settings.jobs()] == [
        ("passthrough", "/checkpoint", "visits"),
        ("sessions", "s3a://checkpoints/sessions", "visits"),
        ("audit.v2", "s3://checkpoints/audit", "audit"),
    ]


def test_without_watched_jobs_the_observer_watches_the_passthrough_alone(tmp_path: Path) -> None:
    observer = env(render(), "observer")
    assert json.loads(observer["OBSERVER_WATCHED_JOBS"]["value"]) == []
    assert not [n for n in observer if n.startswith(("S3_", "AWS_"))]


@pytest.mark.parametrize(
    ("jobs", "refusal"),
    [
        ([SESSIONS, {**AUDIT, "name": "sessions"}], 'the name "sessions" is taken'),
        ([{**SESSIONS, "name": "passthrough"}], 'the name "passthrough" is taken'),
        ([{**SESSIONS, "checkpoint": "hdfs://nn/sessions"}], "observer.watchedJobs.0.checkpoint"),
        ([{**SESSIONS, "checkpoint": "/checkpoint/sessions"}], "observer.watchedJobs.0.checkpoint"),
        ([{**SESSIONS, "name": "no spaces"}], "observer.watchedJobs.0.name"),
    ],
)
def test_a_job_the_observer_could_not_tell_apart_or_read_is_refused(
    tmp_path: Path, jobs: list[dict[str, Any]], refusal: str
) -> None:
    with pytest.raises(RuntimeError) as refused:
        rendered(tmp_path, jobs)
    assert refusal in str(refused.value)
