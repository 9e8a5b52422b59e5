"""The container tests build every image; once they are built, the kind cluster of tests/e2e_kind is made
on a thread of its own while these tests run, when the kind tests run right after them (the session's
order, tests/conftest.py): a cluster made ahead of tests further away would only take CPU from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamwatch_dev.kind_release import ClusterAhead

HERE = Path(__file__).parent
E2E_KIND = HERE.parent / "e2e_kind"


@pytest.fixture(scope="package", autouse=True)
def kind_cluster_made_ahead(request: pytest.FixtureRequest, kind_ahead: ClusterAhead) -> None:
    items = request.session.items
    mine = [i for i, item in enumerate(items) if HERE in item.path.parents]
    following = items[mine[-1] + 1] if mine and mine[-1] + 1 < len(items) else None
    if following is None or E2E_KIND not in following.path.parents:
        return
    kind_ahead.start(
        request.getfixturevalue("service_images"),
        request.getfixturevalue("infra_images"),
        request.getfixturevalue("output_root") / "_kind",
    )
