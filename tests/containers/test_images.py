"""Each service image imports every one of its modules, run the way the chart runs it.

The image installs only its own package (``uv sync --package X``), so an import that the shared
development environment satisfies can still be missing there: this is where that shows. The container
gets the rendered pod spec's user, read-only root filesystem, dropped capabilities and volumes.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from streamwatch_dev.chart import render
from streamwatch_dev.containers import ChartWiring
from streamwatch_dev.docker import DockerEngine
from streamwatch_dev.images import SERVICES, BuildResult
from streamwatch_dev.workloads import service_containers

IMPORT_ALL = """
import importlib, json, os, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "modules": names}))
"""


def package_modules(service: str) -> set[str]:
    """The modules of the service's package, from its source tree."""
    (src,) = (Path(__file__).resolve().parents[2] / "services" / service / "src").iterdir()
    return {
        ".".join(p.relative_to(src.parent).with_suffix("").parts)
        for p in src.rglob("*.py")
        if p.name != "__init__.py"
    }


@pytest.mark.parametrize("service", SERVICES)
def test_image_imports_every_module_as_the_chart_runs_it(
    service: str, docker_engine: DockerEngine, service_images: dict[str, BuildResult], output_dir: Path
) -> None:
    manifests = render()
    main = next(c for c in service_containers(manifests, service) if not c.init)
    package = f"streamwatch_{service.replace('-', '_')}"
    wiring = ChartWiring(docker_engine, manifests, hosts={}, root=output_dir)
    name = f"sw-import-{service}-{uuid.uuid4().hex[:8]}"
    run = wiring.container(main, name, command=["python", "-c", IMPORT_ALL, package])
    assert "--read-only" in run.argv and "--user" in run.argv, "the chart must give a read-only, non-root pod"
    try:
        run.start()
        code = run.wait_exit(180)
        output = run.logs()
        assert code == 0, f"{service} image cannot import its own modules:\n{output[-4000:]}"
        result = json.loads(output.strip().splitlines()[-1])
        assert result["uid"] == 10001 and result["gid"] == 10001
        assert set(result["modules"]) == package_modules(service)
        assert run.changed_paths() == []
    finally:
        docker_engine.remove(run.name)
