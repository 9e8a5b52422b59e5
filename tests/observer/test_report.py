"""Profile reports: the rows stay Arrow in the observer process and cross to the worker as Arrow IPC
bytes; there few-valued text columns become categories, and a report still shows each column's type,
missing values and statistics (built with the real ydata-profiling, in this process and in the real
profiler's worker process)."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from streamwatch_observer.report import ProfileRequest, build_html, compact, from_ipc, sample, to_frame

MOMENT = datetime(2026, 1, 1, tzinfo=UTC)


def test_few_valued_string_columns_reach_pandas_as_sorted_categories() -> None:
    n = 120
    rows = pa.table(
        {
            "page": ["home.html", "about.html", None] * (n // 3),
            "fifty": [f"v{i % 50}" for i in range(n)],
            "fifty_one": [f"v{i % 51}" for i in range(n)],
            "tags": [["x"], ["y"], None] * (n // 3),
            "count": [1, 2, 3] * (n // 3),
            "empty": pa.array([None] * n, pa.string()),
            "untyped": [None] * n,
        }
    )
    frame = to_frame(compact(rows))
    assert frame.dtypes.map(str).to_dict() == {
        "page": "category",
        "fifty": "category",
        "fifty_one": "object",
        "tags": "object",
        "count": "int64",
        "empty": "object",
        "untyped": "object",
    }
    # The categories pandas' astype("category") makes: sorted, nulls missing.
    assert list(frame["page"].cat.categories) == ["about.html", "home.html"]
    page = frame["page"].astype(object)
    assert page.where(page.notna(), None).tolist() == rows["page"].to_pylist()
    assert rows["page"].type == pa.string()  # the caller's table is left as it was


def test_compact_goes_by_position_so_repeated_names_work() -> None:
    rows = pa.Table.from_arrays([pa.array(["a", "b"]), pa.array(["x", "y"])], names=["name", "name"])
    assert [str(t) for t in to_frame(rows).dtypes] == ["category", "category"]


def test_report_shows_types_missing_values_and_value_counts() -> None:
    n = 120
    rows = pa.table(
        {
            "visit_id": [f"v{i:04d}" for i in range(n)],
            "user_id": [None if i % 20 == 0 else f"user_{i}" for i in range(n)],
            "page": [("home.html", "about.html", "contact.html")[i % 3] for i in range(n)],
            "keep_private": [i % 10 == 0 for i in range(n)],
        }
    )
    html = build_html(ProfileRequest("job", {0: (0, n - 1)}, MOMENT, MOMENT, rows).job_for_worker())
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


def test_what_crosses_to_the_worker_is_arrow_ipc_and_no_pandas_object() -> None:
    rows = pa.table({"page": ["a", "b", None], "n": [1, 2, 3]})
    job = ProfileRequest("job", {3: (10, 12)}, MOMENT, MOMENT, rows).job_for_worker()
    assert isinstance(job.ipc, bytes)
    assert from_ipc(job.ipc).equals(rows)
    assert job.title == "job partitions 3 20260101T000000.000Z"
    # What the process pool sends the worker is this pickle (with the function's name): no pandas in it.
    assert b"pandas" not in pickle.dumps(job)


def test_merged_requests_keep_the_highest_drift_per_field_and_every_column() -> None:
    first_rows = pa.table({"page": ["a", "b"]})
    second_rows = pa.table({"page": ["c", "d"], "user_id": ["u1", None]})
    first = ProfileRequest("job", {0: (0, 1)}, MOMENT, MOMENT, first_rows, {"page": 0.1, "user_id": 0.3})
    second = ProfileRequest("job", {0: (2, 3)}, MOMENT, MOMENT, second_rows, {"page": 0.5})
    merged = first.merged(second, max_rows=10)
    assert merged.drift == {"page": 0.5, "user_id": 0.3}
    assert merged.drift_max == ("page", 0.5)
    assert merged.ranges == {0: (0, 3)}
    assert merged.rows.to_pydict() == {"page": ["a", "b", "c", "d"], "user_id": [None, None, "u1", None]}
    assert ProfileRequest("job", {0: (0, 1)}, MOMENT, MOMENT, first_rows).drift_max is None


def test_sample_is_reproducible_and_bounded() -> None:
    rows = pa.table({"n": list(range(1000))})
    picked = sample(rows, 100, seed=7)
    assert picked.num_rows == 100
    assert picked.equals(sample(rows, 100, seed=7))
    assert not picked.equals(sample(rows, 100, seed=8))
    assert len(set(picked["n"].to_pylist())) == 100
    assert sample(rows, 1000, seed=7) is rows


_OBSERVER_SIDE = textwrap.dedent(
    """
    import json, sys, time
    from datetime import UTC, datetime
    from pathlib import Path

    import pyarrow as pa

    from streamwatch_observer.delivery import DirectoryDestination
    from streamwatch_observer.profiler import Profiler
    from streamwatch_observer.report import ProfileRequest

    # As the quality meter's rows: Arrow buffers (pa.array() of Python lists would import pandas).
    rows = pa.ipc.open_file(sys.argv[2]).read_all()
    n = rows.num_rows
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    imported_before = "pandas" in sys.modules
    profiler = Profiler(DirectoryDestination(Path(sys.argv[1])), max_rows=400).start()
    profiler.submit(ProfileRequest("job", {0: (0, n - 1)}, moment, moment, rows))
    profiler.submit(ProfileRequest("job", {1: (0, n - 1)}, moment, moment, rows))  # merged, resampled
    deadline = time.monotonic() + 240
    while not profiler.idle() and time.monotonic() < deadline:
        time.sleep(0.1)
    profiler.close(timeout=60)
    imported = sorted(m for m in ("pandas", "ydata_profiling", "numba") if m in sys.modules)
    print(json.dumps([imported_before, imported]))
    """
)


def test_the_observer_process_never_imports_pandas_or_ydata_profiling_on_the_profile_path(
    tmp_path: Path,
) -> None:
    n = 300
    rows = pa.table(
        {
            "visit_id": [f"v{i}" for i in range(n)],
            "page": [("home.html", "about.html")[i % 2] for i in range(n)],
            "event_time": pa.array([i * 1000 for i in range(n)], pa.timestamp("ms", tz="UTC")),
        }
    )
    table_file = tmp_path / "rows.arrow"
    with pa.ipc.new_file(table_file, rows.schema) as writer:
        writer.write_table(rows)
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-c", _OBSERVER_SIDE, str(reports), str(table_file)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, []]
    (report,) = reports.glob("*.html")  # built in the worker process from the Arrow IPC bytes
    assert report.name.startswith("job_partitions-0-1_")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", report.read_text()))
    assert "Number of observations 400" in text
    assert "page Categorical" in text
