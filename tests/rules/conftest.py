"""What the alert-rule tests share: a rule file of the chart as rendered, and promtool run on it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamwatch_dev.chart import render_rule_files
from streamwatch_dev.prometheus import promtool

# The README section of each alert (tests/rules/test_runbooks.py checks that the anchors exist).
RUNBOOK = "https://github.com/streamwatch/streamwatch/blob/main/README.md#"


def rendered_rule_file(target: Path, name: str, values: dict[str, Any] | None = None) -> Path:
    """The chart's rule file ``name`` (``observer.rules.yaml``...) rendered under ``target``."""
    (path,) = [p for p in render_rule_files(target, values) if p.name == name]
    return path


@pytest.fixture(scope="module")
def rule_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rule file the test module names in ``RULE_FILE``, rendered with the chart's defaults."""
    return rendered_rule_file(tmp_path_factory.mktemp("rules"), request.module.RULE_FILE)


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, check=False)


def promtool_test(
    path: Path, rule_files: list[Path], evaluation_interval: str, tests: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` on a unit-test file written to ``path``: ``tests`` against ``rule_files``."""
    unit_tests = {
        "rule_files": [str(p) for p in rule_files],
        "evaluation_interval": evaluation_interval,
        "tests": tests,
    }
    path.write_text(yaml.safe_dump(unit_tests, sort_keys=False))
    return run_promtool("test", "rules", str(path))


def assert_passes(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
