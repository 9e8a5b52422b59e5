"""The README's settings table is generated from the settings models and must stay current."""

from __future__ import annotations

from pathlib import Path

from streamwatch_common.settings import env_name
from streamwatch_common.settings_doc import BEGIN, END, main, registered_settings, rewrite
from streamwatch_dev.process import REPO_ROOT

README = REPO_ROOT / "README.md"


def test_every_service_registers_its_settings() -> None:
    assert set(registered_settings()) == {
        "generator",
        "visits-writer",
        "passthrough",
        "observer",
        "profile-publisher",
    }


def test_every_setting_has_a_description() -> None:
    undocumented = [
        env_name(cls, name, field)
        for cls in registered_settings().values()
        for name, field in cls.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert undocumented == []


def test_readme_settings_table_is_up_to_date() -> None:
    text = README.read_text(encoding="utf-8")
    assert rewrite(text) == text, "README settings table is stale: run `make docs`"


def test_check_mode_fails_on_a_stale_table_and_write_fixes_it(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(f"# x\n\n{BEGIN}\n| old |\n{END}\n", encoding="utf-8")
    assert main([str(stale), "--check"]) == 1
    assert main([str(stale), "--write"]) == 0
    assert main([str(stale), "--check"]) == 0
    assert "GENERATOR_RATE" in stale.read_text(encoding="utf-8")
