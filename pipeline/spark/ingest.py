"""Spark binding of ingest: read pool units in parallel, validate, then drop exact duplicates pool-wide.

The reading tasks write their rows and rejects themselves (task_writes), and beside them the rows
they read per file and a 64-bit hash of each duplicate key per row. The driver checks both from
those small parts; a pool whose hashes do not repeat, the common case, then needs no further Spark
job and no rewrite: the tasks' parts become the output (measured on 1M captions: 3.6 s -> 2.0 s).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.run.directory import REJECT_SCHEMA, REJECTS, StageResult, file_identity, run_stage
from pipeline.run.stages import STAGES
from pipeline.spark.outputs import ddl, work_dir, write_split
from pipeline.spark.session import spread
from pipeline.spark.task_writes import conform, write_from_tasks
from pipeline.text import pool
from pipeline.text.carried import with_carried
from pipeline.text.ingest import (
    ROW_SCHEMA,
    IngestConfig,
    any_repeat,
    canonicalize,
    duplicate_keys,
    key_hashes,
    key_hashes_schema,
    pii_kinds,
)

INGEST = STAGES["ingest"]
COMBINED_SCHEMA = pa.schema(list(ROW_SCHEMA) + [f for f in REJECT_SCHEMA if f.name not in ROW_SCHEMA.names])
_READ_SCHEMA = pa.schema([("source_file", pa.string()), ("rows", pa.int64()), ("pii", pa.int64())])


def _unit_frame(spark: SparkSession, units: list[pool.PoolUnit]) -> DataFrame:
    """One row per unit, spread over the cores (no shuffle needed); each task reads its units."""
    return spread(spark, [(json.dumps(asdict(unit)),) for unit in units], "unit string")


def _split(columns: pool.PoolColumns, config: IngestConfig):
    """Batches of encoded pool units -> every row they hold, validated: {"rows": ..., "rejects": ...},
    and how many rows were read from which file ("read")."""
    def run(batches):
        for batch in batches:
            for encoded in batch.column("unit").to_pylist():
                unit = pool.PoolUnit(**json.loads(encoded))
                for raw in pool.read_unit(unit, columns):
                    rows, rejects = canonicalize(raw, config)
                    kept_pii = 0 if config.drop_pii else sum(kind is not None for kind in pii_kinds(rows["caption"]))
                    read = pa.table({"source_file": [raw.path], "rows": [len(raw.rows)], "pii": [kept_pii]},
                                    schema=_READ_SCHEMA)
                    yield {"rows": rows, "rejects": rejects, "read": read}
    return run


def _with_key_hashes(split, keys: dict[str, list[str]]):
    def run(batches):
        for outputs in split(batches):
            yield {**outputs, "key_hashes": key_hashes(outputs["rows"], keys)}
    return run


def read_pool(spark: SparkSession, units: list[pool.PoolUnit], columns: pool.PoolColumns,
              config: IngestConfig) -> DataFrame:
    """Every row of the units, validated, in one schema: good rows have a null `reason`, rejects carry theirs."""
    split = _split(columns, config)

    def combined(batches):
        for outputs in split(batches):
            for target in ("rows", "rejects"):
                yield from conform(outputs[target], COMBINED_SCHEMA).to_batches()

    return _unit_frame(spark, units).mapInArrow(combined, ddl(COMBINED_SCHEMA))


_BROADCAST_GROUPS = 2_000_000


def _repeated_hashes(rows: DataFrame, key: list[str], cached: list[DataFrame]) -> tuple[DataFrame, int]:
    """64-bit hashes of `key` that occur on several rows (cheaper to count than the strings), and how many."""
    repeated = (rows.groupBy(F.xxhash64(*key).alias("_hash")).count().filter("count > 1").select("_hash")
                .persist(StorageLevel.MEMORY_AND_DISK))
    cached.append(repeated)
    return repeated, repeated.count()


def _mark_losers(rows: DataFrame, key: list[str], order: list[str], reason: str, detail,
                 repeated: DataFrame, size: int) -> DataFrame:
    """Mark every row but the first (by `order`) of each `key` group as a reject with `reason`.

    Only rows whose key hash repeats are grouped exactly (so a hash collision changes nothing); the
    groups are joined back broadcast while few, so a pool with few duplicates pays no wide shuffle.
    """
    small = size < _BROADCAST_GROUPS
    candidates = rows.join(F.broadcast(repeated) if small else repeated,
                           F.xxhash64(*[rows[column] for column in key]) == repeated["_hash"], "left_semi")
    groups = candidates.groupBy(*key).agg(F.min(F.struct(*order)).alias("_keep"))
    joined = rows.join(F.broadcast(groups) if small else groups, key, "left")
    loser = F.col("reason").isNull() & F.col("_keep").isNotNull() & (F.struct(*order) != F.col("_keep"))
    return (joined.withColumn("detail", F.when(loser, detail).otherwise(F.col("detail")))
            .withColumn("reason", F.when(loser, F.lit(reason)).otherwise(F.col("reason")))
            .drop("_keep"))


def _loser_rule(reason: str, dedup_key: str) -> tuple[list[str], Column]:
    """Which row of a group of duplicates is kept (the first by the order), and what the others' reject says.

    Among exact duplicates the smallest uid is kept (then source position); among rows sharing a
    pool-given uid, the smallest (url, caption).
    """
    if reason == "duplicate":
        same = f"same {dedup_key.replace('_', ' and ')} as uid "
        return ["uid", "source_file", "source_row"], F.concat(F.lit(same), F.col("_keep.uid"))
    return ["url", "caption", "source_file", "source_row"], F.lit("uid already used by another row")


def _mark_duplicates(rows: DataFrame, keys: dict[str, list[str]], dedup_key: str,
                     cached: list[DataFrame]) -> DataFrame | None:
    """rows with a `reason` on all but one row per key, the same one whatever the input order; None
    when no key really repeats (its hashes only collided)."""
    marked = rows.withColumn("reason", F.lit(None).cast("string")).withColumn("detail", F.lit(None).cast("string"))
    found = False
    for reason, key in keys.items():
        repeated, size = _repeated_hashes(rows, key, cached)
        if size:
            order, detail = _loser_rule(reason, dedup_key)
            marked, found = _mark_losers(marked, key, order, reason, detail, repeated, size), True
    return marked if found else None


def _pii_kept(read_dir: Path) -> int:
    """Kept captions that hold personal data (with drop_pii there are none: they are rejects)."""
    return int(pq.read_table(read_dir, schema=_READ_SCHEMA).column("pii").to_numpy().sum())


def _rows_read(read_dir: Path, units: list[pool.PoolUnit]) -> int:
    """Rows read from the pool; a Parquet file must yield exactly the rows its metadata lists."""
    summary = pq.read_table(read_dir, schema=_READ_SCHEMA).group_by("source_file").aggregate([("rows", "sum")])
    read = dict(zip(summary.column("source_file").to_pylist(), summary.column("rows_sum").to_pylist()))
    listed: dict[str, int] = {}
    for unit in units:
        if unit.rows is not None:
            listed[unit.path] = listed.get(unit.path, 0) + unit.rows
    for path, rows in listed.items():
        if read.get(path, 0) != rows:
            raise RuntimeError(f"{path}: read {read.get(path, 0)} rows, its metadata lists {rows}")
    return sum(read.values())


def _repeating_keys(hashes_dir: Path, keys: dict[str, list[str]]) -> dict[str, list[str]]:
    """The keys whose hashes, over the whole pool, repeat."""
    hashes = pq.read_table(hashes_dir, schema=key_hashes_schema(keys))
    return {reason: key for reason, key in keys.items()
            if any_repeat(hashes.column(reason).to_numpy())}


def _move_parts(source: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    for part in source.glob("part-*.parquet"):
        os.replace(part, destination / part.name)


def run_ingest(spark: SparkSession, pool_path: str, run_dir: Path, config: IngestConfig,
               url_col: str | None = None, caption_col: str | None = None, uid_col: str | None = None,
               force: bool = False) -> dict:
    units, columns = pool.resolve(pool_path, url_col, caption_col, uid_col)
    files = sorted({unit.path for unit in units})
    stage_config = {**asdict(config), "columns": asdict(columns)}
    inputs = {"pool": str(pool_path), "files": file_identity([Path(path) for path in files])}

    row_schema = with_carried(ROW_SCHEMA, ["language"] if columns.language or config.identify_language else [])

    def body(out_dir: Path) -> StageResult:
        keys = duplicate_keys(config.dedup_key, columns.uid is not None)
        scratch = {target: work_dir(out_dir, target) for target in ("rows", "rejects", "read", "key_hashes")}
        cached: list[DataFrame] = []
        try:
            counts = write_from_tasks(_unit_frame(spark, units), _with_key_hashes(_split(columns, config), keys),
                                      {"rows": (scratch["rows"], row_schema),
                                       "rejects": (scratch["rejects"], REJECT_SCHEMA),
                                       "read": (scratch["read"], _READ_SCHEMA),
                                       "key_hashes": (scratch["key_hashes"], key_hashes_schema(keys))})
            rows_in, pii_kept = _rows_read(scratch["read"], units), _pii_kept(scratch["read"])
            repeating = _repeating_keys(scratch["key_hashes"], keys)
            marked = None
            if repeating:
                marked = _mark_duplicates(spark.read.parquet(str(scratch["rows"])), repeating, config.dedup_key,
                                          cached)
            if marked is None:
                _move_parts(scratch["rows"], out_dir)
                _move_parts(scratch["rejects"], out_dir / REJECTS)
                kept, rejected = counts["rows"][None], dict(counts["rejects"])
            else:
                rejects = spark.read.parquet(str(scratch["rejects"]))
                kept, rejected = write_split(marked.unionByName(rejects, allowMissingColumns=True), out_dir,
                                             row_schema.names)
        finally:
            for frame in cached:
                frame.unpersist()
            for directory in scratch.values():
                shutil.rmtree(directory, ignore_errors=True)
        # Captions with personal data: rejected with drop_pii, else kept and counted here
        pii = rejected.get("pii", 0) + pii_kept
        return StageResult(rows_in=rows_in, rows_out=kept, rejected=rejected,
                           extra={"files": len(files), "units": len(units), "pii_captions": pii})

    return run_stage(run_dir, INGEST.folder, stage_config, inputs, body, force=force)
