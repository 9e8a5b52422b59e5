"""The passthrough's checkpoint on object storage in the chart: with ``passthrough.checkpoint.url`` no
checkpoint volume is made or mounted, the passthrough and the observer get the same URL and the store's
connection, the credentials only as references to the Secret; a URL of another scheme is refused naming
the value. Without it, the volume as before."""

from __future__ import annotations

from typing import Any

import pytest

from streamwatch_dev.chart import render
from streamwatch_dev.workloads import service_containers

URL = "s3a://checkpoints/passthrough"
VALUES = {
    "passthrough.checkpoint.url": URL,
    "objectStore.endpoint": "http://seaweedfs.storage:8333",
    "objectStore.credentialsSecret.name": "checkpoint-store",
}


def env(manifests: list[dict[str, Any]], service: str) -> dict[str, Any]:
    (c,) = [c for c in service_containers(manifests, service) if not c.init]
    return c.env()


def pod_volumes(manifests: list[dict[str, Any]], component: str) -> list[str]:
    (deployment,) = [
        m
        for m in manifests
        if m["kind"] == "Deployment" and m["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return [v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]]


def test_an_object_store_checkpoint_needs_no_volume_and_reaches_both_pods_with_the_secret() -> None:
    manifests = render(VALUES)
    claims = [m["metadata"]["name"] for m in manifests if m["kind"] == "PersistentVolumeClaim"]
    assert not [c for c in claims if c.endswith("-passthrough")]
    for service, variable in (("passthrough", "PASSTHROUGH_"), ("observer", "OBSERVER_")):
        variables = env(manifests, service)
        assert variables[f"{variable}CHECKPOINT_PATH"]["value"] == URL
        assert variables["S3_ENDPOINT_URL"]["value"] == "http://seaweedfs.storage:8333"
        assert variables["S3_REGION"]["value"] == "us-east-1"
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert variables[name]["valueFrom"]["secretKeyRef"] == {"name": "checkpoint-store", "key": name}
        assert "checkpoint" not in pod_volumes(manifests, service)


def test_without_a_url_the_checkpoint_is_the_volume_and_no_store_is_wired() -> None:
    manifests = render()
    claims = [m["metadata"]["name"] for m in manifests if m["kind"] == "PersistentVolumeClaim"]
    assert "sw-streamwatch-passthrough" in claims
    for service in ("passthrough", "observer"):
        assert "checkpoint" in pod_volumes(manifests, service)
        assert not [n for n in env(manifests, service) if n.startswith(("S3_", "AWS_"))]
    assert env(manifests, "observer")["OBSERVER_CHECKPOINT_PATH"]["value"] == "/checkpoint"


@pytest.mark.parametrize("url", ["gs://checkpoints/passthrough", "/checkpoint", "s3a:///no-bucket"])
def test_a_checkpoint_url_of_another_kind_is_refused_naming_the_value(url: str) -> None:
    with pytest.raises(RuntimeError) as refused:
        render({"passthrough.checkpoint.url": url})
    assert "passthrough.checkpoint.url" in str(refused.value)


TABLES = "s3a://lake/streamwatch/"


def test_the_visits_writers_tables_and_checkpoint_on_the_store_need_no_volume() -> None:
    """Both the job and its create-tables init container get the paths under the URL and the store's
    connection (the Secret by reference); no claim, no data volume."""
    manifests = render({**VALUES, "passthrough.checkpoint.url": "", "visitsWriter.storage.url": TABLES})
    claims = [m["metadata"]["name"] for m in manifests if m["kind"] == "PersistentVolumeClaim"]
    assert not [c for c in claims if c.endswith("-visits-writer")]
    assert "data" not in pod_volumes(manifests, "visits-writer")
    writers = service_containers(manifests, "visits-writer")
    assert sorted(c.init for c in writers) == [False, True]
    for container in writers:
        variables = container.env()
        assert {
            name: variables[f"VISITS_WRITER_{name}"]["value"]
            for name in ("VISITS_TABLE_PATH", "DEAD_LETTER_TABLE_PATH", "CHECKPOINT_PATH")
        } == {
            "VISITS_TABLE_PATH": "s3a://lake/streamwatch/delta/visits",
            "DEAD_LETTER_TABLE_PATH": "s3a://lake/streamwatch/delta/visits_dead_letters",
            "CHECKPOINT_PATH": "s3a://lake/streamwatch/checkpoints/visits-writer",
        }
        assert variables["S3_ENDPOINT_URL"]["value"] == "http://seaweedfs.storage:8333"
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert variables[name]["valueFrom"]["secretKeyRef"] == {"name": "checkpoint-store", "key": name}
        assert "data" not in [m["name"] for m in container.spec.get("volumeMounts", [])]
    # The passthrough keeps its volume and gets no store: each pod is wired for what it uses.
    assert not [n for n in env(manifests, "passthrough") if n.startswith(("S3_", "AWS_"))]


def test_without_a_url_the_visits_writer_keeps_its_volume_and_no_store() -> None:
    manifests = render()
    claims = [m["metadata"]["name"] for m in manifests if m["kind"] == "PersistentVolumeClaim"]
    assert "sw-streamwatch-visits-writer" in claims
    assert "data" in pod_volumes(manifests, "visits-writer")
    variables = env(manifests, "visits-writer")
    assert variables["VISITS_WRITER_VISITS_TABLE_PATH"]["value"] == "/data/delta/visits"
    assert not [n for n in variables if n.startswith(("S3_", "AWS_"))]


@pytest.mark.parametrize("url", ["abfs://lake/streamwatch", "/data", "s3://"])
def test_a_tables_url_of_another_kind_is_refused_naming_the_value(url: str) -> None:
    with pytest.raises(RuntimeError) as refused:
        render({"visitsWriter.storage.url": url})
    assert "visitsWriter.storage.url" in str(refused.value)
