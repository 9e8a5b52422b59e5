"""Every alert the chart ships, Prometheus' and Grafana's, carries a runbook_url that points at a section of
README.md about that alert: the anchor exists (as GitHub makes anchors from headings) and its heading is
the alert's name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from streamwatch_dev.chart import render, render_rule_files
from streamwatch_dev.process import REPO_ROOT

README = REPO_ROOT / "README.md"
BASE = "https://github.com/streamwatch/streamwatch/blob/main/README.md"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def readme_sections(text: str) -> dict[str, str]:
    """Anchor → heading text of every heading outside code blocks (a repeated anchor gets -1, -2, ...)."""
    sections: dict[str, str] = {}
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = re.match(r"#{1,6} (.+)$", line)
        if fenced or not match:
            continue
        anchor = base = github_anchor(match.group(1))
        n = 0
        while anchor in sections:
            n += 1
            anchor = f"{base}-{n}"
        sections[anchor] = match.group(1).strip()
    return sections


def prometheus_alerts(tmp_path: Path, values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for path in render_rule_files(tmp_path, values)
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def grafana_alerts() -> dict[str, dict[str, Any]]:
    (configmap,) = render(show_only="templates/grafana/configmap.yaml")
    rules = yaml.safe_load(configmap["data"]["alert-rules.yaml"])
    return {rule["title"]: rule for group in rules["groups"] for rule in group["rules"]}


def test_anchors_follow_github() -> None:
    assert github_anchor("SLA miss visits synchronizer") == "sla-miss-visits-synchronizer"
    assert github_anchor("Lag evaluation (Burrow's rules, applied to the checkpoint)") == (
        "lag-evaluation-burrows-rules-applied-to-the-checkpoint"
    )
    assert list(readme_sections("# A b\n```\n# not a heading\n```\n## A b\n")) == ["a-b", "a-b-1"]


def test_every_alert_links_to_its_readme_section(tmp_path: Path) -> None:
    sections = readme_sections(README.read_text())
    alerts = prometheus_alerts(tmp_path)
    assert {"SLA miss visits synchronizer", "passthrough lag", "streamwatch target down"} <= set(alerts)
    for name, rule in alerts.items():
        url = rule["annotations"].get("runbook_url", "")
        page, _, anchor = url.partition("#")
        assert page == BASE, f"{name}: {url}"
        assert anchor in sections, f"{name}: README.md has no section #{anchor}"
        assert sections[anchor] == name, f"{name}: #{anchor} is the section {sections[anchor]!r}"


def test_grafana_alerts_link_to_the_same_sections(tmp_path: Path) -> None:
    prometheus = prometheus_alerts(tmp_path)
    grafana = grafana_alerts()
    assert "SLA miss visits synchronizer" in grafana
    for title, rule in grafana.items():
        assert rule["annotations"]["runbook_url"] == prometheus[title]["annotations"]["runbook_url"], title


def test_the_runbook_page_is_a_value(tmp_path: Path) -> None:
    page = "https://wiki.example.com/streamwatch/runbooks"
    alerts = prometheus_alerts(tmp_path, {"alerts.runbookUrl": page})
    assert alerts["field drift"]["annotations"]["runbook_url"] == f"{page}#field-drift"
