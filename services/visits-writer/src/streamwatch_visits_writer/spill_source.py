"""The visits writer's Kafka source on the ``python`` connector: read tasks hand the records to the driver as
Arrow IPC files, and Spark carries only their offsets.

The shared source (:mod:`streamwatch_common.spark.kafka_source`) yields every record to the JVM, which
turns it into a Spark row; the writer then pulled the rows back out as Arrow (``toArrow()``): 70-80 % of
a batch's CPU went into that round trip, for records the JVM never looks at. This variant plans the
micro-batches the same way (it subclasses the shared reader: offsets, read limits, the checkpoint are
unchanged) and reads each range with the same function (:func:`~streamwatch_common.spark.kafka_range_read.
read_range`), but each read task writes the records it read to one Arrow IPC file in the writer's spill
directory and yields Spark the same rows with ``key`` and ``value`` null. So Spark still counts every
record (``numInputRows``, the listener's metrics) and commits the offsets as before, while the payload
crosses from the task to the driver as a file, outside the JVM. :func:`collect_spilled` runs the batch's
one Spark action (Spark's ``noop`` sink) and reads the files.

Local mode only: the driver reads the files the tasks wrote, so they must share a file system (the job
uses the shared source, and ``toArrow()``, on any other master; see
:func:`streamwatch_visits_writer.job.spill_directory`). One writer per checkpoint, so one per spill
directory: the directory is emptied before each batch reads and after it is written.

Usage::

    stream = SpillConnector(spill_dir).read_stream(spark, options)    # in the job
    kafka_rows = collect_spilled(batch_df, spill_dir)                 # in foreachBatch: KAFKA_COLUMNS
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from pyspark.sql.datasource import InputPartition

from streamwatch_common.errors import SourceError
from streamwatch_common.spark.connector import PythonConnector
from streamwatch_common.spark.kafka_range_read import KafkaRange, arrow_schema, read_range
from streamwatch_common.spark.kafka_source import KafkaDataSource, KafkaStreamReader

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

FORMAT_NAME = "streamwatch_kafka_spill"
#: The source option naming the directory the read tasks write to (Spark lowers option names).
SPILL_OPTION = "spillDirectory"
_SUFFIX = ".arrow"


class SpillKafkaDataSource(KafkaDataSource):
    """The ``streamwatch_kafka_spill`` format: :class:`KafkaDataSource`'s stream, payload spilled."""

    @classmethod
    def name(cls) -> str:
        return FORMAT_NAME

    def streamReader(self, schema: StructType) -> SpillKafkaStreamReader:
        return SpillKafkaStreamReader(dict(self.options))


class SpillKafkaStreamReader(KafkaStreamReader):
    """The shared reader's planning; each read task spills its records (:func:`spill_range`)."""

    def __init__(self, options: dict[str, str]) -> None:
        super().__init__(options)
        directory = {k.lower(): v for k, v in options.items()}.get(SPILL_OPTION.lower())
        if not directory:
            raise SourceError(f"option {SPILL_OPTION} is required by {FORMAT_NAME}")
        self.spill_directory = directory

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        task = KafkaRange.of(partition)
        batches = read_range(self.config, task, self.fail_on_data_loss)
        return spill_range(batches, task, Path(self.spill_directory))


def spill_file(directory: Path, task: KafkaRange) -> Path:
    """Where the read task of ``task`` (one topic partition's planned range) spills its records."""
    return directory / f"{task.topic}.{task.partition}.{task.start}.{task.end}{_SUFFIX}"


def _planned_range(path: Path) -> tuple[str, int, int, int]:
    """(topic, partition, start, end) of a spill file, from its name (:func:`spill_file`)."""
    # The topic may hold dots: the partition and the range are the last three parts.
    topic, partition, start, end = path.name[: -len(_SUFFIX)].rsplit(".", 3)
    return topic, int(partition), int(start), int(end)


def spill_range(
    batches: Iterator[pa.RecordBatch], task: KafkaRange, directory: Path
) -> Iterator[pa.RecordBatch]:
    """Write ``batches`` (one range's records) to one IPC file; yield them to Spark without key and value.

    The file is written under a temporary name and renamed once complete, before the task ends: a task
    that fails leaves no file the driver would read, a retried one replaces it (its name is the planned
    range, not what was read).
    """
    final = spill_file(directory, task)
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    writer: pa.RecordBatchFileWriter | None = None
    try:
        for batch in batches:
            if writer is None:
                writer = pa.ipc.new_file(temporary, batch.schema)
            writer.write_batch(batch)
            nulls = pa.nulls(batch.num_rows, pa.binary())
            yield pa.RecordBatch.from_arrays([nulls, nulls, *batch.columns[2:]], schema=batch.schema)
        if writer is not None:
            writer.close()
            writer = None
            os.replace(temporary, final)
    finally:
        if writer is not None:
            writer.close()
        temporary.unlink(missing_ok=True)


def collect_spilled(batch_df: DataFrame, directory: Path) -> pa.Table:
    """The micro-batch's Kafka rows (``key, value, topic, partition, offset, timestamp``), ordered by
    topic, partition and offset: the batch's one Spark action runs the read tasks, then the driver reads
    the files they spilled.

    The action is Spark's ``noop`` sink: the tasks run and Spark counts their rows, with no aggregation
    and no shuffle (a ``groupBy`` of the offsets to name the files cost the JVM twice the CPU, mostly
    compiling). Every file is one planned range that a task finished (the directory is emptied first,
    files appear complete); each is checked to hold only offsets of its range, in order.
    """
    clear(directory)
    batch_df.write.format("noop").mode("overwrite").save()
    planned = sorted((_planned_range(path), path) for path in directory.glob("*" + _SUFFIX))
    tables = []
    for (_topic, _partition, start, end), path in planned:
        # Mapped, not copied; the mapping outlives the file's deletion below.
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        offsets = table["offset"].to_numpy()
        if len(offsets) and (offsets[0] < start or offsets[-1] >= end or (offsets[1:] <= offsets[:-1]).any()):
            raise SourceError(f"{path}: offsets outside {start}..{end - 1} or out of order")
        tables.append(table)
    clear(directory)
    return pa.concat_tables(tables) if tables else arrow_schema().empty_table()


def clear(directory: Path) -> None:
    """Empty ``directory`` (create it if missing): one batch's files at a time."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)


class SpillConnector(PythonConnector):
    """The ``python`` connector with the visits writer's spilling source in place of the shared one."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def read_stream(self, spark: SparkSession, options: Mapping[str, str]) -> DataFrame:
        spark.dataSource.register(SpillKafkaDataSource)
        spilled = {**options, SPILL_OPTION: str(self.directory)}
        return spark.readStream.format(FORMAT_NAME).options(**spilled).load()
