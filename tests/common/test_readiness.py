"""Readiness as named conditions, and the ops answers both the ops server and a web app serve."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from streamwatch_common.ops import READINESS_CHECK_FAILURES, Readiness, ops_answer


def test_ready_once_every_condition_holds_and_reasons_name_the_others() -> None:
    writable = [False]
    readiness = Readiness()
    assert readiness.ready  # nothing asked yet
    readiness.set("serving", False)
    readiness.check("store_writable", lambda: writable[0])
    assert (readiness.ready, readiness.reasons) == (False, ["serving", "store_writable"])
    readiness.set("serving", True)
    assert readiness.reasons == ["store_writable"]
    writable[0] = True
    assert (readiness(), readiness.reasons) == (True, [])


def test_a_check_that_raises_is_not_ready_and_counted_once() -> None:
    def broken() -> bool:
        raise OSError("volume gone")

    readiness = Readiness()
    readiness.check("store_writable", broken)
    before = READINESS_CHECK_FAILURES._value.get()
    answer = ops_answer("/readyz", readiness)
    assert answer is not None and answer.status == 503 and answer.body == b"not ready\n"
    assert READINESS_CHECK_FAILURES._value.get() == before + 1


def test_ops_answers_by_path() -> None:
    registry = CollectorRegistry()
    Counter("demo_things", "Things.", registry=registry).inc()
    healthz = ops_answer("/healthz?x=1", lambda: False, registry)
    readyz = ops_answer("/readyz", lambda: True, registry)
    metrics = ops_answer("/metrics", lambda: True, registry)
    assert healthz is not None and (healthz.status, healthz.body) == (200, b"ok\n")
    assert readyz is not None and (readyz.status, readyz.body) == (200, b"ready\n")
    assert metrics is not None and b"demo_things_total 1.0" in metrics.body
    assert ops_answer("/", lambda: True, registry) is None
