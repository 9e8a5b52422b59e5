"""Profile reports: few-valued text columns become categories, and a report still shows each column's
type, missing values and statistics (built in this process with the real ydata-profiling)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pandas as pd

from streamwatch_observer.report import ProfileRequest, build_html, compact


def test_compact_turns_only_few_valued_string_columns_into_categories() -> None:
    n = 120
    rows = pd.DataFrame(
        {
            "page": ["home.html", "about.html", None] * (n // 3),
            "fifty": [f"v{i % 50}" for i in range(n)],
            "fifty_one": [f"v{i % 51}" for i in range(n)],
            "mixed": ["a", 1, None] * (n // 3),
            "tags": [["x"], ["y"], None] * (n // 3),
            "count": [1, 2, 3] * (n // 3),
            "empty": [None] * n,
        }
    )
    out = compact(rows)
    assert out.dtypes.map(str).to_dict() == {
        "page": "category",
        "fifty": "category",
        "fifty_one": "object",
        "mixed": "object",
        "tags": "object",
        "count": "int64",
        "empty": "object",
    }
    assert out["page"].astype(object).where(out["page"].notna(), None).tolist() == rows["page"].tolist()
    assert rows["page"].dtype == object  # the caller's frame is left as it was


def test_compact_goes_by_position_so_repeated_names_work() -> None:
    rows = pd.DataFrame([["a", "x"], ["b", "y"]], columns=["name", "name"])
    assert compact(rows).dtypes.map(str).tolist() == ["category", "category"]


def test_report_shows_types_missing_values_and_value_counts() -> None:
    n = 120
    rows = pd.DataFrame(
        {
            "visit_id": [f"v{i:04d}" for i in range(n)],
            "user_id": [None if i % 20 == 0 else f"user_{i}" for i in range(n)],
            "page": [("home.html", "about.html", "contact.html")[i % 3] for i in range(n)],
            "keep_private": [i % 10 == 0 for i in range(n)],
        }
    )
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    html = build_html(ProfileRequest("job", {0: (0, n - 1)}, moment, moment, rows))
    without_code = re.sub(r"<(style|script)\b.*?</\1>", "", html, flags=re.S)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", without_code))
    assert "Number of observations 120" in text
    assert "Variable types Text 2 Categorical 1 Boolean 1" in text
    assert "user_id has 6 (5.0%) missing values" in text
    assert "page Categorical Distinct 3" in text
    assert "home.html 40 33.3%" in text  # the frequency table of a categorical column
    assert "visit_id Text Unique Distinct 120" in text
    # Text and category plots (word clouds, a length histogram, bar charts: inline Matplotlib SVGs)
    # were most of the build time; the tables carry the same numbers.
    assert "Matplotlib" not in html


def test_merged_requests_keep_the_highest_drift_per_field() -> None:
    moment = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    rows = pd.DataFrame({"page": ["a", "b"]})
    first = ProfileRequest("job", {0: (0, 1)}, moment, moment, rows, {"page": 0.1, "user_id": 0.3})
    second = ProfileRequest("job", {0: (2, 3)}, moment, moment, rows, {"page": 0.5})
    merged = first.merged(second, max_rows=10)
    assert merged.drift == {"page": 0.5, "user_id": 0.3}
    assert merged.drift_max == ("page", 0.5)
    assert ProfileRequest("job", {0: (0, 1)}, moment, moment, rows).drift_max is None
