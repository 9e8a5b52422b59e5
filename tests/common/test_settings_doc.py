"""The README's settings table and the chart schema's `settings` objects are generated from the settings
models and must stay current."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from streamwatch_common.settings import env_name
from streamwatch_common.settings_doc import BEGIN, END, main, registered_settings, rewrite
from streamwatch_common.settings_schema import rewrite_schema
from streamwatch_dev.process import REPO_ROOT
from streamwatch_observer.settings import ObserverSettings

README = REPO_ROOT / "README.md"
SCHEMA = REPO_ROOT / "charts" / "streamwatch" / "values.schema.json"


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


def test_chart_settings_schemas_are_up_to_date() -> None:
    text = SCHEMA.read_text(encoding="utf-8")
    assert rewrite_schema(text, registered_settings()) == text, (
        "chart settings schema is stale: run `make docs`"
    )


def test_a_field_added_to_a_model_makes_the_schema_stale() -> None:
    class GrownObserverSettings(ObserverSettings):
        window_overlap_seconds: float = Field(default=0.0, ge=0, description="a new setting")

    text = SCHEMA.read_text(encoding="utf-8")
    regenerated = json.loads(
        rewrite_schema(text, {**registered_settings(), "observer": GrownObserverSettings})
    )
    settings = regenerated["properties"]["observer"]["properties"]["settings"]
    assert settings["properties"]["window_overlap_seconds"]["type"] == ["number", "string", "null"]
    assert (
        "window_overlap_seconds"
        not in json.loads(text)["properties"]["observer"]["properties"]["settings"]["properties"]
    )


def test_check_mode_fails_on_a_stale_schema_and_write_touches_nothing_but_the_settings(
    tmp_path: Path,
) -> None:
    original = SCHEMA.read_text(encoding="utf-8")
    data = json.loads(original)
    settings = data["properties"]["generator"]["properties"]["settings"]
    settings["properties"].pop("rate")
    settings["additionalProperties"] = True
    # Around the settings, a layout json.dumps would not write: it must survive the rewrite as it is.
    stale_text = json.dumps(data, indent=4) + "\n"
    stale_text = stale_text.replace(
        '"title": "streamwatch chart values"', '"title":   "streamwatch chart values"'
    )
    readme, schema = tmp_path / "README.md", tmp_path / "values.schema.json"
    readme.write_text(rewrite(README.read_text(encoding="utf-8")), encoding="utf-8")
    schema.write_text(stale_text, encoding="utf-8")
    assert main([str(readme), "--check", "--schema", str(schema)]) == 1
    assert main([str(readme), "--write", "--schema", str(schema)]) == 0
    assert main([str(readme), "--check", "--schema", str(schema)]) == 0
    written = schema.read_text(encoding="utf-8")
    assert json.loads(written) == json.loads(original)
    generator_settings = written.index('"settings"', written.index('"generator"'))
    assert written[:generator_settings] == stale_text[:generator_settings]
    assert '"title":   "streamwatch chart values"' in written
