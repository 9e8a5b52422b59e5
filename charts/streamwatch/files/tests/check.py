"""`helm test` checks of a streamwatch release: what users depend on, not just that ports answer.

The plan comes from the chart as JSON in STREAMWATCH_TEST_PLAN (every name in it is a chart value):
HTTP endpoints that must answer 2xx (health of each component, the observer's /readyz), the Kafka topics
that must exist with equal partition counts, the Elasticsearch index the observer writes, and the
Pushgateway group (job, instance) of each Spark job with the metric it must hold. A group passes only if
it was pushed to within maxPushAgeSeconds (the "stalled" alert's threshold): the group is the job's, the
same for every pod, so a pod that is gone cannot pass it for long, and a group under another instance
(the per-pod groups of earlier chart versions) never does. Each check is retried until it passes or the
deadline ends (a fresh install needs a few minutes before the first batches are pushed).
Secrets come from the environment (ELASTICSEARCH_PASSWORD from its Secret) and are never printed.
Runs on the standard library and confluent-kafka, as uid 10001 on a read-only root filesystem.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

PLAN = json.loads(os.environ["STREAMWATCH_TEST_PLAN"])
SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')

Check = Callable[[], str | None]  # None: passed; else why not (never a secret)


def _get(url: str, headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode("utf-8", "replace"))


def http_ok(url: str) -> Check:
    def check() -> str | None:
        try:
            _get(url)
        except (urllib.error.URLError, OSError) as exc:
            return f"{url}: {exc}"
        return None

    return check


def kafka_topics(topics: list[str]) -> Check:
    def check() -> str | None:
        from confluent_kafka.admin import AdminClient

        config = {"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"], "log_level": 3}
        config.update(json.loads(os.environ.get("KAFKA_PROPERTIES") or "{}"))
        if os.environ.get("KAFKA_SASL_PASSWORD"):
            config["sasl.password"] = os.environ["KAFKA_SASL_PASSWORD"]
        try:
            metadata = AdminClient(config).list_topics(timeout=10)
        except Exception as exc:  # noqa: BLE001 - KafkaException and friends: report, retry
            return f"Kafka at {config['bootstrap.servers']} does not answer: {exc}"
        missing = [t for t in topics if t not in metadata.topics]
        if missing:
            return f"topics missing: {missing}"
        counts = {t: len(metadata.topics[t].partitions) for t in topics}
        if len(set(counts.values())) != 1:
            return f"partition counts differ (the observer needs them equal): {counts}"
        return None

    return check


def elasticsearch_index(index: str) -> Check:
    def check() -> str | None:
        url = os.environ["ELASTICSEARCH_URL"].rstrip("/")
        user = os.environ["ELASTICSEARCH_USERNAME"]
        token = base64.b64encode(f"{user}:{os.environ['ELASTICSEARCH_PASSWORD']}".encode()).decode()
        try:
            _get(f"{url}/{index}", {"Authorization": f"Basic {token}"})
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return f"index {index} does not exist yet (the observer creates it with its first window)"
            return f"index {index}: HTTP {exc.code} from {url}"
        except (urllib.error.URLError, OSError) as exc:
            return f"Elasticsearch at {url}: {exc}"
        return None

    return check


def pushed(pushgateway: str, job: str, instance: str, metric: str, max_age: float) -> Check:
    def check() -> str | None:
        try:
            body = _get(f"{pushgateway.rstrip('/')}/metrics")
        except (urllib.error.URLError, OSError) as exc:
            return f"Pushgateway at {pushgateway}: {exc}"
        group: dict[str, float] = {}  # metric name -> value, of the job's group
        for line in body.splitlines():
            sample = SAMPLE.match(line)
            if sample is None:
                continue
            labels = dict(LABEL.findall(sample["labels"]))
            if labels.get("job") == job and labels.get("instance") == instance:
                group[sample["name"]] = float(sample["value"])
        if metric not in group:
            return f"no {metric} in job {job}'s group {instance} yet (its first micro-batch is not done?)"
        age = time.time() - group["push_time_seconds"]
        if age > max_age:
            return (
                f"job {job}'s group {instance} was last pushed {age:.0f} s ago, more than {max_age:g} s"
                " (alerts.stalled.afterSeconds): no pod of the job is pushing"
            )
        return None

    return check


def main() -> int:
    checks: dict[str, Check] = {}
    for name, url in PLAN.get("http", {}).items():
        checks[name] = http_ok(url)
    if PLAN.get("kafkaTopics"):
        checks["kafka topics " + ", ".join(PLAN["kafkaTopics"])] = kafka_topics(PLAN["kafkaTopics"])
    if PLAN.get("elasticsearchIndex"):
        index = PLAN["elasticsearchIndex"]
        checks[f"elasticsearch index {index}"] = elasticsearch_index(index)
    for group in PLAN.get("pushed", []):
        job, instance, metric = group["job"], group["instance"], group["metric"]
        max_age = float(PLAN["maxPushAgeSeconds"])
        checks[f"{metric} from job {job}"] = pushed(PLAN["pushgateway"], job, instance, metric, max_age)
    deadline = time.monotonic() + float(PLAN.get("deadlineSeconds") or 240)
    failed: dict[str, str] = {}
    while checks:
        failed = {}
        for name, check in list(checks.items()):
            reason = check()
            if reason is None:
                print(f"ok       {name}", flush=True)
                del checks[name]
            else:
                failed[name] = reason
        if not checks or time.monotonic() >= deadline:
            break
        time.sleep(5)
    for name, reason in failed.items():
        print(f"FAILED   {name}: {reason}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
