"""Python tasks that write their own Parquet parts, for stages whose rows are made in Python anyway,
and that can read their input parts themselves too (ParquetParts).

Handing rows back to the JVM only for Spark's writer to encode them costs more than making them
(measured on 1M captions: the match stage 7.3 s through the JVM, 5.5 s written by its tasks, of
which about 4.5 s is matching). Each task writes `part-<partition>.parquet` per target under a hidden
temporary name and renames it when the task succeeds, so a retried or speculative attempt replaces
the part instead of adding one; the stage folder itself is still renamed into place only when the
whole stage is done (pipeline.run.directory). The tasks return their row counts, by reject reason.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark import TaskContext
from pyspark.sql import DataFrame, SparkSession

from pipeline.spark.outputs import ddl
from pipeline.spark.session import ARROW_BATCH_ROWS, spread

Transform = Callable[[Iterator[pa.RecordBatch]], Iterable[Mapping[str, pa.Table | pa.RecordBatch]]]
_COUNTS = pa.schema([("target", pa.string()), ("reason", pa.string()), ("rows", pa.int64())])
# The parts are the line's working data, each read once or twice by the next stage on the same disks: written
# uncompressed, they cost about 1.8x the bytes of snappy's and spare its encoding and decoding, which on 1M real
# captions were a quarter of text curation's time (bench.text_curation: 8.9-9.6 s -> 6.1-7.5 s).
PART_COMPRESSION = "none"


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """table with schema's columns in order; the ones it lacks are null."""
    columns = [table.column(field.name) if field.name in table.column_names else pa.nulls(table.num_rows, field.type)
               for field in schema]
    return pa.table(columns, schema=schema)


def _reasons(rows: pa.Table | pa.RecordBatch) -> Counter:
    """Rows by reject reason (None: rows without one)."""
    if "reason" not in rows.schema.names:
        return Counter({None: rows.num_rows})
    reasons = rows.column("reason")
    counts = pc.value_counts(reasons.combine_chunks() if isinstance(reasons, pa.ChunkedArray) else reasons).to_pylist()
    return Counter({entry["values"]: entry["counts"] for entry in counts})


class _Part:
    """One task's Parquet part for one target, visible only once committed."""

    def __init__(self, directory: Path, name: str, attempt: int, schema: pa.Schema):
        self.final = directory / name
        self.temporary = directory / f".{name}.attempt-{attempt}"
        self.schema = schema
        self.writer = pq.ParquetWriter(self.temporary, schema, compression=PART_COMPRESSION)

    def write(self, rows: pa.Table | pa.RecordBatch) -> None:
        self.writer.write_table(conform(pa.table(rows), self.schema))

    def commit(self) -> None:
        self.writer.close()
        os.replace(self.temporary, self.final)

    def abort(self) -> None:
        self.writer.close()
        self.temporary.unlink(missing_ok=True)


def _in_task(transform: Transform, targets: dict[str, tuple[str, pa.Schema]]):
    def run(batches: Iterator[pa.RecordBatch]):
        context = TaskContext.get()
        name = f"part-{context.partitionId():05d}.parquet"
        parts = {target: _Part(Path(directory), name, context.attemptNumber(), schema)
                 for target, (directory, schema) in targets.items()}
        counts: Counter = Counter()
        try:
            for outputs in transform(batches):
                for target, rows in outputs.items():
                    parts[target].write(rows)
                    counts.update({(target, reason): number for reason, number in _reasons(rows).items()})
        except BaseException:
            for part in parts.values():
                part.abort()
            raise
        for part in parts.values():
            part.commit()
        keys = list(counts)
        yield pa.RecordBatch.from_arrays([pa.array([target for target, _ in keys], pa.string()),
                                          pa.array([reason for _, reason in keys], pa.string()),
                                          pa.array([counts[key] for key in keys], pa.int64())], schema=_COUNTS)
    return run


class ParquetParts:
    """A Parquet dataset that tasks read themselves, a row group at a time, instead of through Spark's
    reader: the rows then skip the JVM's decoding and the trip to Python (measured on 1M captions: match
    6.7 -> 5.5 s, balance 2.9 -> 2.1 s)."""

    def __init__(self, spark: SparkSession, directory: Path, columns: list[str]):
        self.columns = columns
        groups = [(str(path), group) for path in sorted(Path(directory).glob("part-*.parquet"))
                  for group in range(pq.ParquetFile(path).num_row_groups)]
        self.frame = spread(spark, groups, "path string, row_group int")

    def reading(self, transform: Transform) -> Transform:
        """transform, fed the rows of the row groups a task is given."""
        columns = self.columns

        def rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                for path, group in zip(batch.column("path").to_pylist(), batch.column("row_group").to_pylist()):
                    table = pq.ParquetFile(path).read_row_group(group, columns=columns)
                    yield from table.to_batches(max_chunksize=ARROW_BATCH_ROWS)
        return lambda batches: transform(rows(batches))


def write_from_tasks(source: DataFrame | ParquetParts, transform: Transform,
                     targets: dict[str, tuple[Path, pa.Schema]]) -> dict[str, Counter]:
    """Run transform over the source's Arrow batches; each target's tables go to Parquet parts in its folder.

    Target folders must hold no parts yet. Returns, per target, its rows by `reason` (None for rows
    without one). Every target folder is readable afterwards, also when the source had no rows.
    """
    df = source
    if isinstance(source, ParquetParts):
        df, transform = source.frame, source.reading(transform)
    for directory, _ in targets.values():
        Path(directory).mkdir(parents=True, exist_ok=True)
        if any(Path(directory).glob("part-*")):
            raise RuntimeError(f"{directory} already holds parts: tasks must write into a new folder")
    plain = {target: (str(directory), schema) for target, (directory, schema) in targets.items()}
    totals: dict[str, Counter] = {target: Counter() for target in targets}
    for row in df.mapInArrow(_in_task(transform, plain), ddl(_COUNTS)).collect():
        totals[row["target"]][row["reason"]] += row["rows"]
    for directory, schema in targets.values():
        if not any(Path(directory).glob("part-*.parquet")):
            pq.write_table(schema.empty_table(), Path(directory) / "part-00000.parquet")
    return totals

