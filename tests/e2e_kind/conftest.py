"""End-to-end tests against a live cluster (`make up`, then `make e2e-kind`); never part of `make test`.

They run only when STREAMWATCH_E2E_KIND=1 (set by `k8s/kind.sh e2e`); otherwise pytest does not even
collect them. When no cluster is reachable they stop the run with one clear message and a non-zero exit.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from e2e_kind.cluster import Cluster, ClusterUnreachable

collect_ignore_glob = [] if os.environ.get("STREAMWATCH_E2E_KIND") == "1" else ["test_*.py"]


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    try:
        return Cluster.connect(
            namespace=os.environ.get("NAMESPACE", "streamwatch"), release=os.environ.get("RELEASE", "sw")
        )
    except ClusterUnreachable as exc:
        pytest.exit(f"e2e-kind: {exc}", returncode=3)


def pytest_report_header(config: Any) -> str:
    return "e2e-kind: against the cluster of the current kubectl context (make up creates one)"
