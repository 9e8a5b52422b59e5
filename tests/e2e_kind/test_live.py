"""The chart on a real Kubernetes API server, used the way its users use it: `helm install --wait`,
`helm test`, `kubectl logs`, `kubectl scale`, `kubectl delete pod`, `helm upgrade`, `helm uninstall`.

The cluster has two nodes and keeps the passthrough's checkpoint on its object store (SeaweedFS), so
observer replicas spread over both nodes. The tests run in file order on one installation; the generator
delivers a known total meanwhile, and the last data test checks that, after every scale, pod deletion and
rollout before it, the passthrough's copy is equal offset for offset and the observer's windows cover
every offset exactly once with the generator's counts.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from observer.conftest import assert_windows_count_what_was_produced, coverage
from visits_writer.stack import assert_coordinates_once

from streamwatch_dev.chart import CHART, render
from streamwatch_dev.kind import OFFLINE
from streamwatch_dev.kind_release import Cluster

# The first test also waits for the cluster: build or reuse the node image, load the images, install and
# `helm test` (about 8 minutes on 2 busy cores); later tests wait out rollouts and alert timers.
pytestmark = pytest.mark.timeout(1800)

SERVICES = ("generator", "visits-writer", "passthrough", "observer", "profile-publisher")
INFRA = ("pushgateway", "prometheus", "elasticsearch")
SLA_ALERT = "SLA miss visits synchronizer"
SLA_MS = 5000  # alerts.slaMiss.thresholdMs in values.yaml
STALLED_ALERT = "visits synchronizer stalled"
INDEX = "visits_observation_stats"
VISITS, PROCESSED = "visits", "processed_visits"


def _json_lines(text: str) -> dict[str, list[dict[str, Any]]]:
    """`kubectl logs --prefix` output → pod → the lines that are JSON objects."""
    result: dict[str, list[dict[str, Any]]] = {}
    for line in text.splitlines():
        prefix, _, message = line.partition(" ")
        pod = prefix.strip("[]").split("/")[1] if "/" in prefix else prefix
        result.setdefault(pod, [])
        try:
            parsed = json.loads(message)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            result[pod].append(parsed)
    return result


def _restarts(cluster: Cluster, component: str) -> int:
    return sum(
        s.get("restartCount", 0)
        for p in cluster.pods(component)
        for s in p["status"].get("containerStatuses") or []
    )


def test_helm_install_wait_made_every_pod_ready_and_helm_test_passes(kind_cluster: Cluster) -> None:
    for component in (*SERVICES, *INFRA):
        assert kind_cluster.ready_pods(component), f"no ready {component} pod"
    running = [p for p in kind_cluster.pods() if p["status"].get("phase") != "Succeeded"]  # not the test pod
    not_ready = [p["metadata"]["name"] for p in running if not Cluster.ready(p)]
    assert not not_ready, f"pods not ready after helm install --wait: {not_ready}"
    # --logs after a passing test: the pod is kept until the next test (hook-delete-policy
    # before-hook-creation), so fetching its logs works and the command exits 0.
    result = kind_cluster.sandbox.helm("test", kind_cluster.release, "--logs", "--timeout", "5m", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Phase:          Succeeded" in result.stdout, result.stdout


def test_values_that_need_crds_the_cluster_lacks_are_refused_naming_what_to_install(
    kind_cluster: Cluster,
) -> None:
    """No Strimzi and no prometheus-operator CRDs on this cluster yet: one sentence says what to install,
    not Kubernetes' "no matches for kind"."""
    strimzi = kind_cluster.upgrade_dry_run("kafka.enabled=true")
    assert strimzi.returncode != 0
    assert "kafka.enabled=true needs kafka.strimzi.io/v1/Kafka" in strimzi.stderr, strimzi.stderr
    assert "install Strimzi's operator and CRDs" in strimzi.stderr, strimzi.stderr
    assert "no matches for kind" not in strimzi.stderr
    for value, kind in (("serviceMonitor", "ServiceMonitor"), ("prometheusRule", "PrometheusRule")):
        refused = kind_cluster.upgrade_dry_run(f"monitoring.{value}.enabled=true")
        assert refused.returncode != 0
        expected = f"monitoring.{value}.enabled=true needs monitoring.coreos.com/v1/{kind}"
        assert expected in refused.stderr, refused.stderr
        assert "install the prometheus-operator CRDs" in refused.stderr, refused.stderr
    keda = kind_cluster.upgrade_dry_run("observer.keda.enabled=true")
    assert keda.returncode != 0
    assert "observer.keda.enabled=true needs keda.sh/v1alpha1/ScaledObject" in keda.stderr, keda.stderr


def test_strimzi_resources_of_the_default_values_are_accepted_schema_and_admission_only(
    kind_cluster: Cluster,
) -> None:
    """Strimzi's CRDs on the real API server; no operator runs, so this proves schema and admission."""
    sandbox = kind_cluster.sandbox
    for crd in sorted((OFFLINE / "strimzi-crds").glob("*.yaml")):
        # Server-side: Kafka's CRD is larger than client-side apply's last-applied annotation allows.
        sandbox.run("kubectl", "apply", "--server-side", "-f", str(crd))
    sandbox.run("kubectl", "wait", "--for=condition=Established", "--timeout=60s",
                "crd/kafkas.kafka.strimzi.io", "crd/kafkanodepools.kafka.strimzi.io",
                "crd/kafkatopics.kafka.strimzi.io")  # fmt: skip
    strimzi = [d for d in render() if d.get("apiVersion", "").startswith("kafka.strimzi.io/")]
    assert Counter(d["kind"] for d in strimzi) == {"Kafka": 1, "KafkaNodePool": 1, "KafkaTopic": 2}
    manifest = yaml.safe_dump_all(strimzi)
    accepted = sandbox.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=manifest)
    assert accepted.stdout.count("(server dry run)") == len(strimzi), accepted.stdout
    # The same check refuses what the schema does not allow: it is not a check that always passes.
    broken = [dict(d) for d in strimzi]
    kafka = next(d for d in broken if d["kind"] == "Kafka")
    kafka["spec"] = {**kafka["spec"], "kafka": {**kafka["spec"]["kafka"], "replicas": "three"}}
    refused = sandbox.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-",
        input=yaml.safe_dump_all(broken), check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "replicas" in refused.stderr, refused.stdout + refused.stderr
    # With the CRDs served, the chart's own check lets kafka.enabled=true through.
    served = kind_cluster.upgrade_dry_run("kafka.enabled=true")
    assert served.returncode == 0, served.stderr


def test_the_keda_scaled_object_is_accepted_schema_and_admission_only(kind_cluster: Cluster) -> None:
    """KEDA's vendored CRDs on the real API server (no KEDA operator runs): the chart's ScaledObject as
    its KEDA example values render it, and the chart's own check lets it through once they are served."""
    sandbox = kind_cluster.sandbox
    for crd in sorted((OFFLINE / "keda-crds").glob("keda.sh_*.yaml")):
        sandbox.run("kubectl", "apply", "--server-side", "-f", str(crd))
    sandbox.run("kubectl", "wait", "--for=condition=Established", "--timeout=60s",
                "crd/scaledobjects.keda.sh", "crd/triggerauthentications.keda.sh")  # fmt: skip
    rendered = render(values_files=[OFFLINE / "values.yaml", CHART / "ci" / "observer-keda-values.yaml"])
    scaled = [d for d in rendered if d.get("apiVersion", "").startswith("keda.sh/")]
    assert [d["kind"] for d in scaled] == ["ScaledObject"], scaled
    accepted = sandbox.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=yaml.safe_dump_all(scaled)
    )
    assert accepted.stdout.count("(server dry run)") == 1, accepted.stdout
    served = kind_cluster.upgrade_dry_run("observer.keda.enabled=true")
    assert served.returncode == 0, served.stderr


def test_sla_alert_fires_with_simulated_latency_and_clears_after_the_rollout(kind_cluster: Cluster) -> None:
    """NOTES.txt's flip. Each setting rolls the visits writer, so a pod that no longer exists must not
    keep the alert firing (the job's Pushgateway group follows the job, not the pod)."""

    def at_rest() -> bool:
        # The first batches after an install can be slower than the SLA on 2 busy cores (planning, cold
        # JVM), which sets the alert pending for a moment; the flip starts from fast batches and no alert.
        pushed = kind_cluster.prometheus("api/v1/query?query=visits_sync_duration")["result"]
        fast = bool(pushed) and all(float(p["value"][1]) <= SLA_MS for p in pushed)
        return fast and kind_cluster.alert_state(SLA_ALERT) == "inactive"

    kind_cluster.wait("fast batch durations from the visits writer and no SLA alert", at_rest, 300)
    kind_cluster.helm_upgrade("visitsWriter.settings.simulated_latency_seconds=8")
    states: list[str] = []

    def state_in(wanted: set[str]) -> bool:
        state = kind_cluster.alert_state(SLA_ALERT)
        if not states or states[-1] != state:
            states.append(state)
        return state in wanted

    kind_cluster.wait("SLA alert pending", lambda: state_in({"pending", "firing"}), 300, interval=2)
    kind_cluster.wait("SLA alert firing", lambda: state_in({"firing"}), 180, interval=2)
    # One alert, for the job's one Pushgateway group (namespace/deployment), above the test values' SLA.
    (alert,) = kind_cluster.alerts(SLA_ALERT)
    assert alert["labels"]["instance"] == f"{kind_cluster.namespace}/{kind_cluster.fullname}-visits-writer"
    assert float(alert["value"]) > SLA_MS, alert
    kind_cluster.helm_upgrade("visitsWriter.settings.simulated_latency_seconds=0")
    kind_cluster.wait("SLA alert resolved after the rollout", lambda: state_in({"inactive"}), 300, interval=2)
    assert states[-1] == "inactive" and "firing" in states, states
    assert kind_cluster.alert_state(STALLED_ALERT) == "inactive"
    assert len(kind_cluster.wait_ready("visits-writer", 1)) == 1


def test_the_checkpoint_is_on_the_object_store_and_no_pod_mounts_a_checkpoint_volume(
    kind_cluster: Cluster,
) -> None:
    """The tests' values keep the passthrough's checkpoint and the visits writer's tables and checkpoint
    on the cluster's SeaweedFS: no claim is made for them, neither Spark job nor the observer mounts one,
    the observer reads the lag there and the visits writer appends its rows there."""
    claims = kind_cluster.sandbox.kubectl_json("get", "pvc")["items"]
    for component in ("passthrough", "visits-writer"):
        assert f"{kind_cluster.fullname}-{component}" not in {c["metadata"]["name"] for c in claims}
    for component in ("passthrough", "observer", "visits-writer"):
        for pod in kind_cluster.pods(component):
            volumes = pod["spec"].get("volumes") or []
            assert not [v for v in volumes if "persistentVolumeClaim" in v], (component, volumes)

    def query(promql: str) -> list[Any]:
        return list(kind_cluster.prometheus("api/v1/query?query=" + quote(promql))["result"])

    def read_from_the_bucket() -> list[Any] | None:
        return query('observer_lag_status{status="ok"} == 1') or None

    kind_cluster.wait("lag read from the passthrough's checkpoint on S3", read_from_the_bucket, 300)
    assert query('observer_lag_status{status=~"checkpoint_.*"} == 1') == []

    def visits_in_the_bucket() -> list[Any] | None:
        return query("visits_writer_rows_written_total > 0") or None

    kind_cluster.wait("visits appended to the Delta table on S3", visits_in_the_bucket, 300)
    assert query("visits_writer_table_errors_total > 0") == []


def test_observer_scales_to_three_keeps_three_through_helm_upgrade_and_back_to_one(
    kind_cluster: Cluster,
) -> None:
    kind_cluster.scale("observer", 3)
    replicas = set(kind_cluster.wait_ready("observer", 3))
    # Spread over both nodes (the tests' topologySpreadConstraints), with nothing holding them to one:
    # no Multi-Attach error, which a shared ReadWriteOnce checkpoint volume gives on a second node.
    nodes = Counter(p["spec"]["nodeName"] for p in kind_cluster.pods("observer"))
    assert len(nodes) == 2 and max(nodes.values()) == 2, nodes
    events = kind_cluster.sandbox.kubectl_json("get", "events")["items"]
    assert not [e for e in events if e.get("reason") == "FailedAttachVolume"], "Multi-Attach on a node"

    def writing() -> bool:
        return replicas <= {d["replica"] for d in kind_cluster.window_documents(INDEX)}

    kind_cluster.wait("windows from every observer replica", writing, 300)
    lines = _json_lines(kind_cluster.logs("app.kubernetes.io/component=observer"))
    assert replicas <= {pod for pod, parsed in lines.items() if parsed}, lines.keys()
    assert all(line.get("service") == "observer" for parsed in lines.values() for line in parsed)
    # The chart renders no replicas unless observer.replicas is set, so an upgrade leaves `kubectl scale`.
    kind_cluster.helm_upgrade("observer.settings.drift_min_records=200")
    deployment = kind_cluster.sandbox.kubectl_json("get", kind_cluster.deployment("observer"))
    assert deployment["spec"]["replicas"] == 3, "helm upgrade --reuse-values reset the scaled observer"
    kind_cluster.wait_ready("observer", 3)
    kind_cluster.scale("observer", 1)
    kind_cluster.wait_ready("observer", 1)


def test_deleting_the_observer_pod_mid_stream(kind_cluster: Cluster) -> None:
    (old,) = kind_cluster.ready_pods("observer")
    before = len(kind_cluster.window_documents(INDEX))
    kind_cluster.sandbox.kubectl("delete", "pod", old, "--wait=false")
    (new,) = kind_cluster.wait(
        "a replacement observer", lambda: [p for p in kind_cluster.ready_pods("observer") if p != old], 300
    )
    kind_cluster.wait(
        "windows from the replacement",
        lambda: any(d["replica"] == new for d in kind_cluster.window_documents(INDEX)),
        300,
    )
    assert len(kind_cluster.window_documents(INDEX)) > before


def _executors(cluster: Cluster, job: str = "passthrough") -> list[dict[str, Any]]:
    """A Spark job's executor pods that are not going away."""
    return [p for p in cluster.executor_pods(job) if not p["metadata"].get("deletionTimestamp")]


def _running_executors(cluster: Cluster, count: int, job: str = "passthrough") -> list[dict[str, Any]] | None:
    pods = _executors(cluster, job)
    running = [p for p in pods if cluster.ready(p)]
    return running if len(running) == count == len(pods) else None


def _lost_tasks(cluster: Cluster, driver: str) -> list[str]:
    """The driver's log lines of tasks Spark must run again (TaskSetManager's "Lost task")."""
    text = cluster.sandbox.kubectl("logs", driver).stdout
    return [line for line in text.splitlines() if "Lost task" in line]


def test_the_passthrough_runs_its_tasks_on_two_executor_pods_that_spark_replaces(
    kind_cluster: Cluster,
) -> None:
    """The tests' values ask for 2 executors: pods of the passthrough's image, owned by its driver pod,
    logging JSON; one deleted is replaced by Spark (the copy stays exact: the last data test). The
    driver's ServiceAccount may manage pods here and nowhere else."""
    (driver,) = kind_cluster.ready_pods("passthrough")
    pods = kind_cluster.wait("2 executor pods running", lambda: _running_executors(kind_cluster, 2), 300)
    (image,) = {c["image"] for p in kind_cluster.pods("passthrough") for c in p["spec"]["containers"]}
    for pod in pods:
        assert [c["image"] for c in pod["spec"]["containers"]] == [image]
        assert [o["name"] for o in pod["metadata"]["ownerReferences"]] == [driver]
        assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    # The executors ran the copy's read tasks: they logged, and every line is JSON.
    text = kind_cluster.logs("spark-role=executor")
    by_pod = _json_lines(text)
    assert set(by_pod) >= {p["metadata"]["name"] for p in pods}, text[-2000:]
    for name, lines in by_pod.items():
        raw = [line for line in text.splitlines() if line.startswith(f"[pod/{name}/")]
        assert len(lines) == len(raw), f"{name} logged a line that is not JSON"
        assert {line["service"] for line in lines} == {"passthrough-executor"}

    # Deleted, an executor decommissions: Spark's preStop hook (streamwatch-spark-decommission) has it
    # finish its running tasks and exit 0 before the kubelet's SIGTERM, so no copy task is cut short and
    # run again (which would copy its records twice: the last data test).
    gone = pods[0]["metadata"]["name"]
    lost_before = _lost_tasks(kind_cluster, driver)
    with kind_cluster.follow_logs(gone) as follow:
        kind_cluster.sandbox.kubectl("delete", "pod", gone)
        ended = Cluster.log_events(follow.wait_for_end(timeout=120))
    assert [e["exit_code"] for e in ended if e.get("event") == "executor_exited"] == [0], ended[-5:]
    assert _lost_tasks(kind_cluster, driver) == lost_before, "a task of the deleted executor was lost"

    def replacement() -> list[dict[str, Any]] | None:
        running = _running_executors(kind_cluster, 2)
        return running if running and gone not in {p["metadata"]["name"] for p in running} else None

    replaced = kind_cluster.wait("Spark's replacement executor", replacement, 300)
    assert len(replaced) == 2
    assert kind_cluster.ready_pods("passthrough") == [driver], (
        "an executor's loss must not restart the driver"
    )

    account = f"system:serviceaccount:{kind_cluster.namespace}:{kind_cluster.fullname}-passthrough"

    def can(*args: str) -> str:
        return kind_cluster.sandbox.kubectl(
            "auth", "can-i", *args, "--as", account, check=False
        ).stdout.strip()

    assert can("create", "pods") == "yes"
    assert can("list", "pods", "--namespace", "default") == "no"
    assert can("list", "pods", "--all-namespaces") == "no"
    assert can("create", "roles") == "no"
    assert can("get", "secrets") == "no"


def test_deleting_the_passthrough_pod_resumes_from_its_checkpoint(kind_cluster: Cluster) -> None:
    (old,) = kind_cluster.ready_pods("passthrough")
    old_executors = {p["metadata"]["name"] for p in _executors(kind_cluster)}
    kind_cluster.sandbox.kubectl("delete", "pod", old)
    (new,) = kind_cluster.wait(
        "a replacement passthrough",
        lambda: [p for p in kind_cluster.ready_pods("passthrough") if p != old],
        300,
    )
    # The driver's executors went with it (owned by its pod); the new driver has its own.
    executors = kind_cluster.wait(
        "the new driver's executors", lambda: _running_executors(kind_cluster, 2), 300
    )
    assert not old_executors & {p["metadata"]["name"] for p in executors}
    assert {o["name"] for p in executors for o in p["metadata"]["ownerReferences"]} == {new}

    # The new pod's Spark query starts from the checkpoint in the bucket: its first batch id is not 0.
    def first_batch() -> int | None:
        ids = [e["batch_id"] for e in kind_cluster.batch_progress(new)]
        return min(ids) if ids else None

    first = kind_cluster.wait("a batch from the replacement passthrough", first_batch, 300)
    assert first > 0, f"the replacement passthrough started over at batch {first}"


def _input_rows_since(cluster: Cluster, pod: str, batches_before: int) -> int:
    """Rows the job's batches read after its first ``batches_before`` batch_progress lines."""
    return sum(e["input_rows"] for e in cluster.batch_progress(pod)[batches_before:])


def test_the_visits_writer_moves_to_two_executors_and_goes_on_when_one_is_killed(
    kind_cluster: Cluster,
) -> None:
    """`helm upgrade` gives the visits writer 2 executors (its tables and checkpoint are on the object
    store, which executors need); one is killed mid-stream and Spark replaces it while the driver goes on.
    The Delta tables then hold every offset once: checked once the generator has stopped, below."""
    kind_cluster.helm_upgrade(
        "visitsWriter.spark.executors.count=2", "visitsWriter.spark.executors.cpuRequest=100m"
    )
    (driver,) = kind_cluster.wait_ready("visits-writer", 1)
    pods = kind_cluster.wait(
        "2 visits-writer executors", lambda: _running_executors(kind_cluster, 2, "visits-writer"), 300
    )
    assert {o["name"] for p in pods for o in p["metadata"]["ownerReferences"]} == {driver}

    kind_cluster.wait(
        "a batch on the executors", lambda: _input_rows_since(kind_cluster, driver, 0) or None, 300
    )
    killed = pods[0]["metadata"]["name"]
    kind_cluster.sandbox.kubectl("delete", "pod", killed, "--grace-period=0", "--force")
    before = len(kind_cluster.batch_progress(driver))

    def replaced() -> list[dict[str, Any]] | None:
        running = _running_executors(kind_cluster, 2, "visits-writer")
        return running if running and killed not in {p["metadata"]["name"] for p in running} else None

    kind_cluster.wait("Spark's replacement visits-writer executor", replaced, 300)
    kind_cluster.wait(
        "rows written after the kill", lambda: _input_rows_since(kind_cluster, driver, before) or None, 300
    )
    assert kind_cluster.ready_pods("visits-writer") == [driver]
    assert _restarts(kind_cluster, "visits-writer") == 0


def test_executors_a_quota_refuses_leave_the_job_running_unready_until_it_allows_them(
    kind_cluster: Cluster,
) -> None:
    """A namespace quota that admits no more pods: the passthrough's executors, once deleted, cannot be
    made again. The driver keeps running (no restart), logs the executors it lacks and is not Ready with
    none; once the quota goes, Spark makes them and the driver is Ready again."""
    sandbox = kind_cluster.sandbox
    (driver,) = kind_cluster.ready_pods("passthrough")
    restarts = _restarts(kind_cluster, "passthrough")
    executors = _running_executors(kind_cluster, 2)
    assert executors, "the passthrough's 2 executors, before the quota"
    pods = sandbox.kubectl_json(
        "get", "pods", "--field-selector=status.phase!=Succeeded,status.phase!=Failed"
    )
    # Room for every pod but the two executors about to go.
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "e2e-no-more-pods"},
        "spec": {"hard": {"pods": str(len(pods["items"]) - 2)}},
    }
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(quota))
    try:
        kind_cluster.wait(
            "the quota's usage counted",
            lambda: (
                sandbox.kubectl_json("get", "resourcequota", "e2e-no-more-pods").get("status", {}).get("used")
            ),
            60,
        )
        sandbox.kubectl("delete", "pod", *[p["metadata"]["name"] for p in executors])

        def unready_and_pending() -> list[dict[str, Any]] | None:
            if kind_cluster.ready_pods("passthrough"):
                return None
            events = kind_cluster.pod_events(driver)
            pending = [e for e in events if e.get("event") == "executors_pending" and e["running"] == 0]
            return pending or None

        (pending, *_) = kind_cluster.wait(
            "the driver unready, logging its pending executors", unready_and_pending, 300
        )
        assert pending["requested"] == 2
        assert not _executors(kind_cluster), "an executor pod past the quota"
        text = sandbox.kubectl("logs", driver).stdout
        assert "exceeded quota" in text, "Spark's refused pod creation is in the driver's log"
    finally:
        sandbox.kubectl("delete", "resourcequota", "e2e-no-more-pods", check=False)
    kind_cluster.wait(
        "the executors once the quota is gone", lambda: _running_executors(kind_cluster, 2), 300
    )
    kind_cluster.wait_ready("passthrough", 1)
    assert kind_cluster.ready_pods("passthrough") == [driver]
    assert _restarts(kind_cluster, "passthrough") == restarts, "the driver restarted while short of executors"
    events = kind_cluster.pod_events(driver)
    assert [e for e in events if e.get("event") == "executors_running" and e["running"] == 2]


def test_every_offset_copied_once_and_observed_once_with_the_generators_counts(kind_cluster: Cluster) -> None:
    (generator,) = kind_cluster.ready_pods("generator")
    assert _restarts(kind_cluster, "generator") == 0, "the generator restarted: its summary would be partial"
    # Its summary is the last line it logs on SIGTERM: follow the log while the Deployment scales to 0.
    with kind_cluster.follow_logs(generator) as follow:
        kind_cluster.scale("generator", 0)
        text = follow.wait_for_end(timeout=120)
    (done,) = [e for e in Cluster.log_events(text) if e.get("event") == "generator_summary"]
    total = done["delivered"]
    assert total > 0 and done.get("undelivered", 0) == 0, done

    seen: list[dict[str, dict[int, int]]] = []

    def copied() -> dict[str, dict[int, dict[str, Any]]] | None:
        topics = kind_cluster.topics(VISITS, PROCESSED)
        highs = {topic: {p: v["high"] for p, v in partitions.items()} for topic, partitions in topics.items()}
        seen[:] = [highs]
        return topics if highs[VISITS] == highs[PROCESSED] else None

    try:
        topics = kind_cluster.wait("the passthrough's copy to catch up", copied, 300, interval=5)
    except TimeoutError as exc:
        # Behind (a stalled job) and ahead (records copied twice) are different failures: say which.
        lost = [
            line for pod in kind_cluster.ready_pods("passthrough") for line in _lost_tasks(kind_cluster, pod)
        ]
        raise AssertionError(
            f"{exc}; the topics' end offsets last seen: {seen}; the driver's lost tasks: {lost[-5:]}"
        ) from exc
    ends = {p: v["high"] for p, v in topics[VISITS].items()}
    if sum(ends.values()) != total:
        # A string, not a dict: pytest cuts a long repr short, and the generator's own lines say why.
        kafka = "app.kubernetes.io/component=kafka"
        pods = kind_cluster.sandbox.kubectl("get", "pods", "-l", kafka, "-o", "wide").stdout
        warnings = [json.dumps(e) for e in Cluster.log_events(text) if e.get("level") in ("WARNING", "ERROR")]
        raise AssertionError(
            f"the topic holds {sum(ends.values())} records, the generator's summary {total}: topic ends"
            f" {ends}, generator by partition {done['by_partition']}, delivery failures"
            f" {done['delivery_failures']}, offset repeats {done['acknowledged_offset_repeats']};"
            f" kafka pods:\n{pods}"
            "the generator's warnings and errors:\n"
            + "\n".join(warnings)
            + f"\nthe broker's last lines:\n{kind_cluster.logs(kafka, '--tail=60')}"
        )
    for partition, source in topics[VISITS].items():
        assert topics[PROCESSED][partition]["records"] == source["records"], f"partition {partition} differs"

    def covered() -> list[dict[str, Any]] | None:
        windows = kind_cluster.window_documents(INDEX)
        count = sum(e - s + 1 for ranges in coverage(windows).values() for s, e in ranges)
        return windows if count >= total else None

    windows = kind_cluster.wait("windows covering every record", covered, 300, interval=5)
    assert_windows_count_what_was_produced(windows, ends, done["by_partition_and_kind"])


def test_every_offset_written_once_to_delta_by_the_visits_writer_across_its_executor_kill(
    kind_cluster: Cluster,
) -> None:
    """The generator has stopped (above): the visits writer's two tables, written from its pod alone and
    then from its executors, one of them killed mid-stream, hold every offset of `visits` exactly once."""
    ends = {p: v["high"] for p, v in kind_cluster.topics(VISITS)[VISITS].items()}

    def complete() -> list[tuple[int, int]] | None:
        rows = kind_cluster.delta_coordinates()
        return rows if len(rows) >= sum(ends.values()) else None

    rows = kind_cluster.wait("the visits writer's tables to catch up", complete, 300, interval=10)
    assert_coordinates_once(rows, ends)


def test_console_logging_after_helm_upgrade(kind_cluster: Cluster) -> None:
    # Every Deployment rolls; the observer's rollout is the one this test reads (the others go on while
    # the uninstall below removes them).
    kind_cluster.helm_upgrade("logging.format=console", wait=False)
    kind_cluster.rollout_status("observer")
    (pod,) = kind_cluster.wait_ready("observer", 1)

    def logged() -> str:
        return kind_cluster.sandbox.kubectl("logs", pod).stdout.strip()

    lines = kind_cluster.wait("observer log lines", logged, 120).splitlines()
    assert not any(line.lstrip().startswith("{") for line in lines), lines[:5]
    assert any("observer" in line for line in lines), lines[:5]


def test_helm_uninstall_leaves_no_pod_and_keeps_the_data_volumes(kind_cluster: Cluster) -> None:
    sandbox = kind_cluster.sandbox

    def claims() -> set[str]:
        # Not the release's: the plain Kafka's and the object store's (k8s/offline).
        offline = {"data-kafka-0", "seaweedfs"}
        return {c["metadata"]["name"] for c in sandbox.kubectl_json("get", "pvc")["items"]} - offline

    claims_before = claims()
    sandbox.helm("uninstall", kind_cluster.release, "--wait", "--timeout", "5m", timeout=400)
    # The kept `helm test` pod too: the chart's post-delete hook removes it.
    kind_cluster.wait("every pod of the release gone", lambda: not kind_cluster.pods(), 300)
    claims_after = claims()
    # What the README promises: every data volume stays (the reports by helm.sh/resource-policy: keep;
    # Elasticsearch's through its StatefulSet's claim template). The passthrough's checkpoint and the
    # visits writer's tables are in the bucket here, so neither has a claim.
    names = {f"{kind_cluster.fullname}-profile-publisher", f"data-{kind_cluster.fullname}-elasticsearch-0"}
    assert names == claims_before == claims_after
