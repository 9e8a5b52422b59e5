"""The container tests build every image; once they are built, the kind cluster of tests/e2e_kind (which
runs next) is made on a thread of its own while these tests run, when the session holds kind tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamwatch_dev.kind_release import ClusterAhead

E2E_KIND = Path(__file__).parent.parent / "e2e_kind"


@pytest.fixture(scope="package", autouse=True)
def kind_cluster_made_ahead(request: pytest.FixtureRequest, kind_ahead: ClusterAhead) -> None:
    if not any(E2E_KIND in item.path.parents for item in request.session.items):
        return
    kind_ahead.start(
        request.getfixturevalue("service_images"),
        request.getfixturevalue("infra_images"),
        request.getfixturevalue("output_root") / "_kind",
    )
