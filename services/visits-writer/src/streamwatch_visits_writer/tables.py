"""Create the visits and dead-letter Delta tables (the seed's ``tables_creator``), idempotently.

A table is a local path or on S3-compatible storage (``s3a://bucket/prefix``), read and written by delta-rs
with the connection's :meth:`~streamwatch_common.object_store.ObjectStoreSettings.storage_options`. An
existing table is accepted when its columns are exactly the expected ones; anything else is an
:class:`IncompatibleTableError` naming the differences, because appending to it would fail or mix shapes.
A store that cannot be reached (no such bucket, refused credentials, no answer) is a
:class:`TableUnreachableError` naming the table and the store's answer.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, Schema

from streamwatch_common.errors import StreamwatchError
from streamwatch_common.object_store import ObjectStoreSettings
from streamwatch_visits_writer.schema import DEAD_LETTER_TABLE, VISITS_TABLE

logger = logging.getLogger(__name__)


class TableError(StreamwatchError):
    """A table the writer cannot use; ``reason`` is the label of ``visits_writer_table_errors_total``."""

    reason = "table"


class IncompatibleTableError(TableError):
    """A table exists at the path but its schema is not the one the writer needs."""

    reason = "incompatible"


class TableUnreachableError(TableError):
    """The table's storage could not be read or written."""

    reason = "unreachable"


# delta-rs's store errors span lines, indented with colour codes; a log line or stderr wants one line.
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def one_line(error: BaseException) -> str:
    """``error``'s message on one line, without terminal colour codes."""
    return " ".join(_COLOUR.sub("", str(error)).replace("↳", "").split())


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


def ensure_table(
    path: str, schema: pa.Schema, name: str, storage_options: Mapping[str, str] | None = None
) -> bool:
    """Create the table if it does not exist; True if it was created. Raises
    :class:`IncompatibleTableError` or :class:`TableUnreachableError`."""
    options = dict(storage_options) if storage_options else None
    try:
        if DeltaTable.is_deltatable(path, storage_options=options):
            actual = DeltaTable(path, storage_options=options).schema().to_json()
        else:
            DeltaTable.create(path, schema, mode="ignore", name=name, storage_options=options)
            logger.info("table_created", extra={"table": name, "path": path, "columns": schema.names})
            return True
    except OSError as exc:
        raise TableUnreachableError(f"table {name} at {path} cannot be reached: {one_line(exc)}") from exc
    problems = schema_differences(schema, actual)
    if problems:
        differences = "; ".join(problems)
        raise IncompatibleTableError(f"table {name} at {path} has an incompatible schema: {differences}")
    logger.info("table_exists", extra={"table": name, "path": path})
    return False


def create_tables(
    visits_path: str, dead_letter_path: str, store: ObjectStoreSettings | None = None
) -> dict[str, bool]:
    """Both tables of the visits writer (on the object store of ``store`` when their paths say so);
    returns table name → created now."""

    def options(path: str) -> dict[str, str] | None:
        return store.storage_options(path) if store else None

    return {
        "visits": ensure_table(visits_path, VISITS_TABLE, "visits", options(visits_path)),
        "visits_dead_letters": ensure_table(
            dead_letter_path, DEAD_LETTER_TABLE, "visits_dead_letters", options(dead_letter_path)
        ),
    }
