"""Schemas of the two Delta tables, built on the shared visit record (:data:`VISIT`).

Arrow is the reference (delta-rs writes Arrow); the Spark schemas (``from_json`` of the null counts, the jvm
path's ``mapInArrow``) are derived from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from streamwatch_common.visit_record import VISIT

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

_TIMESTAMP = pa.timestamp("us", tz="UTC")

# Where each row came from: (partition, offset) is unique per record, which is what proves exactly-once.
_SOURCE = [
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("kafka_timestamp", _TIMESTAMP),
    ("batch_id", pa.int64()),
]

VISITS_TABLE = pa.schema([*VISIT, *_SOURCE])

DEAD_LETTER_TABLE = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("topic", pa.string()),
        *_SOURCE,
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)

# Every record classified, in one table (what the jvm path's mapInArrow returns): each column of the two
# tables once, in the visits table's order and then the dead letter's own. A visit column is null where the
# record did not parse; ``reason`` and ``detail`` are null for a good visit.
CLASSIFIED_TABLE = pa.schema(
    [*VISITS_TABLE, *(field for field in DEAD_LETTER_TABLE if field.name not in VISITS_TABLE.names)]
)

# Dead-letter reasons (label values of visits_writer_dead_letters_total).
REASON_EMPTY = "empty_value"
REASON_UNPARSEABLE = "unparseable"
REASON_MISSING = "missing_required_field"
REASONS = (REASON_EMPTY, REASON_UNPARSEABLE, REASON_MISSING)
# The dead-letter `detail` of the reasons that have one fixed text (missing fields name the fields).
DETAIL_EMPTY = "null or empty Kafka value"
DETAIL_UNPARSEABLE = "not a JSON object of the visit schema"


def visit_spark_schema() -> StructType:
    """The visit as a Spark schema, for ``from_json``."""
    return _spark_schema(VISIT)


def classified_spark_schema() -> StructType:
    """:data:`CLASSIFIED_TABLE` as a Spark schema, for ``mapInArrow``."""
    return _spark_schema(CLASSIFIED_TABLE)


def _spark_schema(schema: pa.Schema) -> StructType:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)
