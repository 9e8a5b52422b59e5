"""Field names from the data become safe document keys and metric labels, in bounded number."""

from __future__ import annotations

from streamwatch_observer.fields import reported_counts, safe_name


def test_safe_names() -> None:
    assert safe_name("context.user.ip") == "context__user__ip"
    assert safe_name("we ird-key!") == "we_ird_key_"
    assert safe_name("") == "_"
    assert safe_name("a..b") == "a_____b"


def test_reported_counts_keep_required_fields_and_cap_the_rest() -> None:
    counts = {f"f{i:03d}": i for i in range(10)} | {"page": 4, "user_id": 0}
    reported, left_out = reported_counts(counts, ["user_id", "page"], limit=5)
    assert list(reported) == ["user_id", "page", "f000", "f001", "f002"]
    assert left_out == 7
    merged, _ = reported_counts({"a.b": 1, "a b": 2}, [], limit=10)
    assert merged == {"a__b": 1, "a_b": 2}
