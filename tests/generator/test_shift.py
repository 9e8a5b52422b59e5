"""The generator's distribution shift (GENERATOR_SHIFT_*): drift made on purpose, from record N on."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from streamwatch_common.shutdown import GracefulShutdown
from streamwatch_generator.records import PAGES, VisitFactory, encode
from streamwatch_generator.run import VisitsGenerator
from streamwatch_generator.settings import GeneratorSettings

_MOMENT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings need an address; these tests never produce, so it is never contacted.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")


def _visits(seed: int, shift: str | None, count: int = 4000) -> list[dict[str, object]]:
    factory = VisitFactory(random.Random(seed))
    return [json.loads(encode(factory.visit(factory.visit_id(), _MOMENT, shift))) for _ in range(count)]


def test_page_shift_concentrates_pages_on_contact() -> None:
    plain = Counter(v["page"] for v in _visits(1, None))
    shifted = Counter(v["page"] for v in _visits(1, "page"))
    assert plain["contact.html"] / 4000 < 0.07  # 1 of 25 pages, uniform
    assert 0.78 < shifted["contact.html"] / 4000 < 0.88
    assert set(shifted) <= set(PAGES)


def test_browser_shift_makes_most_visits_safari_with_a_matching_version() -> None:
    visits = _visits(2, "browser")
    technical = [v["context"]["technical"] for v in visits]  # type: ignore[index]
    browsers = Counter(t["browser"] for t in technical)
    assert 0.9 < browsers["Safari"] / 4000 < 0.97
    assert all(t["browser_version"] == "18.0" for t in technical if t["browser"] == "Safari")
    plain = Counter(v["context"]["technical"]["browser"] for v in _visits(2, None))  # type: ignore[index]
    assert plain["Safari"] / 4000 < 0.4


def test_unshifted_records_are_the_same_bytes_for_the_same_seed() -> None:
    assert _visits(3, None, 50) == _visits(3, None, 50)


def test_shift_starts_at_the_configured_record() -> None:
    settings = GeneratorSettings(shift_after_records=100, shift_field="browser")
    generator = VisitsGenerator(settings, GracefulShutdown())
    generator.produced = 99
    assert generator._shift() is None
    generator.produced = 100
    assert generator._shift() == "browser"
    unset = VisitsGenerator(GeneratorSettings(), GracefulShutdown())
    unset.produced = 10**9
    assert unset._shift() is None


def test_shift_settings_come_from_the_environment_and_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENERATOR_SHIFT_AFTER_RECORDS", "5000")
    monkeypatch.setenv("GENERATOR_SHIFT_FIELD", "page")
    settings = GeneratorSettings()
    assert (settings.shift_after_records, settings.shift_field) == (5000, "page")
    monkeypatch.setenv("GENERATOR_SHIFT_FIELD", "referral")
    with pytest.raises(ValidationError, match="shift_field"):
        GeneratorSettings()
