"""Create the visits and dead-letter Delta tables (the seed's ``tables_creator``), idempotently.

An existing table is accepted when its columns are exactly the expected ones; anything else is an
:class:`IncompatibleTableError` naming the differences, because appending to it would fail or mix shapes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, Schema

from streamwatch_common.errors import StreamwatchError
from streamwatch_visits_writer.schema import DEAD_LETTER_TABLE, VISITS_TABLE

logger = logging.getLogger(__name__)


class IncompatibleTableError(StreamwatchError):
    """A table exists at the path but its schema is not the one the writer needs."""


def _fields(schema_json: str) -> dict[str, Any]:
    # Field metadata and nullability are not part of compatibility: only names and types are.
    def strip(type_: Any) -> Any:
        if isinstance(type_, dict) and type_.get("type") == "struct":
            return {f["name"]: strip(f["type"]) for f in type_["fields"]}
        if isinstance(type_, dict):
            return {k: strip(v) for k, v in type_.items() if k not in ("metadata", "containsNull")}
        return type_

    return dict(strip(json.loads(schema_json)))


def schema_differences(expected: pa.Schema, actual_json: str) -> list[str]:
    """Human-readable differences between the expected Arrow schema and a Delta schema (JSON)."""
    want = _fields(Schema.from_arrow(expected).to_json())
    have = _fields(actual_json)
    problems = [f"missing column {name}" for name in want if name not in have]
    problems += [f"unexpected column {name}" for name in have if name not in want]
    problems += [
        f"column {name} is {json.dumps(have[name])}, expected {json.dumps(want[name])}"
        for name in want
        if name in have and have[name] != want[name]
    ]
    return problems


def ensure_table(path: str, schema: pa.Schema, name: str) -> bool:
    """Create the table if it does not exist; True if it was created. Raises IncompatibleTableError."""
    if DeltaTable.is_deltatable(path):
        problems = schema_differences(schema, DeltaTable(path).schema().to_json())
        if problems:
            raise IncompatibleTableError(
                f"table {name} at {path} has an incompatible schema: {'; '.join(problems)}"
            )
        logger.info("table_exists", extra={"table": name, "path": path})
        return False
    DeltaTable.create(path, schema, mode="ignore", name=name)
    logger.info("table_created", extra={"table": name, "path": path, "columns": schema.names})
    return True


def create_tables(visits_path: str, dead_letter_path: str) -> dict[str, bool]:
    """Both tables of the visits writer; returns table name → created now."""
    return {
        "visits": ensure_table(visits_path, VISITS_TABLE, "visits"),
        "visits_dead_letters": ensure_table(dead_letter_path, DEAD_LETTER_TABLE, "visits_dead_letters"),
    }
