"""``streamwatch-spark-class-archive``: what it does when it cannot write the archive.

That it writes an archive the drivers map is shown by every Spark test session, which makes one with it
(tests/conftest.py) and checks a passthrough driver maps it (tests/passthrough/test_passthrough.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from streamwatch_dev.services import VENV_BIN


def test_a_place_it_cannot_write_is_one_json_line_naming_it_and_exit_1(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    target = blocked / "spark.jsa"
    made = subprocess.run(
        [str(VENV_BIN / "streamwatch-spark-class-archive"), str(target)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LOG_FORMAT": "json"},
        timeout=120,
        check=False,
    )
    assert made.returncode == 1, made
    events = [json.loads(line) for line in made.stdout.splitlines()]
    assert [e["event"] for e in events] == ["class_archive_started", "class_archive_failed"], events
    assert events[-1]["path"] == str(target)
    assert not target.exists()
