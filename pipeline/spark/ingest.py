"""Spark binding of ingest: read pool units in parallel, validate, then drop exact duplicates pool-wide.

The reading tasks write their rows and rejects themselves (task_writes). A pool without duplicates,
the common case, then costs one more aggregation and no rewrite: the tasks' parts become the output.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline import pool
from pipeline.ingest import ROW_SCHEMA, IngestConfig, canonicalize
from pipeline.rundir import REJECT_SCHEMA, REJECTS, StageResult, file_identity, run_stage
from pipeline.spark.outputs import ddl, work_dir, write_split
from pipeline.spark.task_writes import conform, write_from_tasks

STAGE = "ingest"
OUTPUT_COLUMNS = ROW_SCHEMA.names
COMBINED_SCHEMA = pa.schema(list(ROW_SCHEMA) + [f for f in REJECT_SCHEMA if f.name not in ROW_SCHEMA.names])
# The columns whose equality makes two rows duplicates, per IngestConfig.dedup_key.
_DEDUP_COLUMNS = {"url_caption": ["url", "caption"], "url": ["url"]}


def _unit_frame(spark: SparkSession, units: list[pool.PoolUnit]) -> DataFrame:
    """One row per unit, spread over up to 4 tasks per core (no shuffle needed); each task reads its units."""
    encoded = [(json.dumps(asdict(unit)),) for unit in units]
    slices = max(1, min(len(units), 4 * spark.sparkContext.defaultParallelism))
    return spark.createDataFrame(spark.sparkContext.parallelize(encoded, slices), "unit string")


def _split(columns: pool.PoolColumns, config: IngestConfig):
    """Batches of encoded pool units -> every row they hold, validated: {"rows": ..., "rejects": ...}."""
    def run(batches):
        for batch in batches:
            for encoded in batch.column("unit").to_pylist():
                unit = pool.PoolUnit(**json.loads(encoded))
                for raw in pool.read_unit(unit, columns):
                    rows, rejects = canonicalize(raw, config)
                    yield {"rows": rows, "rejects": rejects}
    return run


def read_pool(spark: SparkSession, units: list[pool.PoolUnit], columns: pool.PoolColumns,
              config: IngestConfig) -> DataFrame:
    """Every row of the units, validated, in one schema: good rows have a null `reason`, rejects carry theirs."""
    split = _split(columns, config)

    def combined(batches):
        for outputs in split(batches):
            for table in outputs.values():
                yield from conform(table, COMBINED_SCHEMA).to_batches()

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


def _mark_duplicates(rows: DataFrame, dedup_key: str, pool_uids: bool, cached: list[DataFrame]) -> DataFrame | None:
    """rows with a `reason` on all but one row per dedup key and per uid, the same one whatever the input
    order; None when nothing repeats.

    Among exact duplicates the smallest uid is kept (then source position); among rows sharing a
    pool-given uid, the smallest (url, caption). A content-derived uid is unique once contents are,
    and it stands for (url, caption) as a shorter key.
    """
    steps = []
    if dedup_key != "none":
        key = ["uid"] if dedup_key == "url_caption" and not pool_uids else _DEDUP_COLUMNS[dedup_key]
        same = f"same {dedup_key.replace('_', ' and ')} as uid "
        steps.append((key, ["uid", "source_file", "source_row"], "duplicate",
                      F.concat(F.lit(same), F.col("_keep.uid"))))
    if pool_uids or dedup_key == "none":
        steps.append((["uid"], ["url", "caption", "source_file", "source_row"], "duplicate_uid",
                      F.lit("uid already used by another row")))
    marked = rows.withColumn("reason", F.lit(None).cast("string")).withColumn("detail", F.lit(None).cast("string"))
    found = False
    for key, order, reason, detail in steps:
        repeated, size = _repeated_hashes(rows, key, cached)
        if size:
            marked, found = _mark_losers(marked, key, order, reason, detail, repeated, size), True
    return marked if found else None


def _rows_read(source_files: DataFrame, units: list[pool.PoolUnit]) -> int:
    """Rows read from the pool; a Parquet file must yield exactly the rows its metadata lists."""
    read = {row["source_file"]: row["count"] for row in source_files.groupBy("source_file").count().collect()}
    listed: dict[str, int] = {}
    for unit in units:
        if unit.rows is not None:
            listed[unit.path] = listed.get(unit.path, 0) + unit.rows
    for path, rows in listed.items():
        if read.get(path, 0) != rows:
            raise RuntimeError(f"{path}: read {read.get(path, 0)} rows, its metadata lists {rows}")
    return sum(read.values())


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

    def body(out_dir: Path) -> StageResult:
        scratch = {target: work_dir(out_dir, target) for target in ("rows", "rejects")}
        cached: list[DataFrame] = []
        try:
            counts = write_from_tasks(_unit_frame(spark, units), _split(columns, config),
                                      {"rows": (scratch["rows"], ROW_SCHEMA),
                                       "rejects": (scratch["rejects"], REJECT_SCHEMA)})
            rows = spark.read.parquet(str(scratch["rows"]))
            rejects = spark.read.parquet(str(scratch["rejects"]))
            rows_in = _rows_read(rows.select("source_file").unionByName(rejects.select("source_file")), units)
            marked = _mark_duplicates(rows, config.dedup_key, columns.uid is not None, cached)
            if marked is None:
                _move_parts(scratch["rows"], out_dir)
                _move_parts(scratch["rejects"], out_dir / REJECTS)
                kept, rejected = counts["rows"][None], dict(counts["rejects"])
            else:
                kept, rejected = write_split(marked.unionByName(rejects, allowMissingColumns=True), out_dir,
                                             OUTPUT_COLUMNS)
        finally:
            for frame in cached:
                frame.unpersist()
            for directory in scratch.values():
                shutil.rmtree(directory, ignore_errors=True)
        return StageResult(rows_in=rows_in, rows_out=kept, rejected=rejected,
                           extra={"files": len(files), "units": len(units)})

    return run_stage(run_dir, STAGE, stage_config, inputs, body, force=force)
