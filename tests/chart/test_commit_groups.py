"""The Spark jobs' commit groups in the chart: each job's setting reaches its pod, and values that would make
two jobs, or a job and the observer, share a consumer group are refused with one sentence naming them."""

from __future__ import annotations

import pytest

from streamwatch_dev.chart import render
from streamwatch_dev.workloads import service_containers


def test_each_jobs_commit_group_reaches_its_pod_and_none_is_set_by_default() -> None:
    def env(manifests: list[dict[str, object]], service: str, name: str) -> object:
        (c,) = [c for c in service_containers(manifests, service) if not c.init]
        return c.env().get(name, {}).get("value")

    manifests = render(
        {
            "passthrough.settings.commit_group": "spark-passthrough",
            "visitsWriter.settings.commit_group": "spark-visits-writer",
        }
    )
    assert env(manifests, "passthrough", "PASSTHROUGH_COMMIT_GROUP") == "spark-passthrough"
    assert env(manifests, "visits-writer", "VISITS_WRITER_COMMIT_GROUP") == "spark-visits-writer"
    defaults = render()
    assert env(defaults, "passthrough", "PASSTHROUGH_COMMIT_GROUP") is None


@pytest.mark.parametrize(
    ("values", "sentence"),
    [
        (
            {"passthrough.settings.commit_group": "spark", "visitsWriter.settings.commit_group": "spark"},
            'visitsWriter.settings.commit_group and passthrough.settings.commit_group are both "spark"',
        ),
        (
            {"passthrough.settings.commit_group": "streamwatch-observer"},
            'passthrough.settings.commit_group "streamwatch-observer" is the observer\'s own consumer group',
        ),
        (
            {"visitsWriter.settings.commit_group": "mine", "observer.settings.group_id": "mine"},
            'visitsWriter.settings.commit_group "mine" is the observer\'s own consumer group',
        ),
    ],
)
def test_a_shared_commit_group_is_refused(values: dict[str, str], sentence: str) -> None:
    with pytest.raises(RuntimeError) as refused:
        render(values)
    assert sentence in str(refused.value)
