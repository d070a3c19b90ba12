"""Spark binding of ingest: read pool units in parallel, validate, then drop exact duplicates pool-wide."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline import pool
from pipeline.ingest import ROW_SCHEMA, IngestConfig, canonicalize
from pipeline.rundir import REJECT_SCHEMA, StageResult, file_identity, run_stage
from pipeline.spark.outputs import ddl, work_dir, write_split
from pipeline.spark.task_writes import conform, materialize_from_tasks

STAGE = "ingest"
OUTPUT_COLUMNS = ["uid", "url", "caption", "source_file", "source_row"]
COMBINED_SCHEMA = pa.schema(list(ROW_SCHEMA) + [f for f in REJECT_SCHEMA if f.name not in ROW_SCHEMA.names])


def _unit_frame(spark: SparkSession, units: list[pool.PoolUnit]) -> DataFrame:
    """One row per unit, spread over up to 4 tasks per core (no shuffle needed); each task reads its units."""
    encoded = [(json.dumps(asdict(unit)),) for unit in units]
    slices = max(1, min(len(units), 4 * spark.sparkContext.defaultParallelism))
    return spark.createDataFrame(spark.sparkContext.parallelize(encoded, slices), "unit string")


def _combined(columns: pool.PoolColumns, config: IngestConfig):
    """Batches of encoded pool units -> every row they hold, validated, in one schema: good rows have a
    null `reason`, rejects carry theirs."""
    def rows(batches):
        for batch in batches:
            for encoded in batch.column("unit").to_pylist():
                unit = pool.PoolUnit(**json.loads(encoded))
                for raw in pool.read_unit(unit, columns):
                    for table in canonicalize(raw, config):
                        yield from conform(table, COMBINED_SCHEMA).to_batches()
    return rows


def read_pool(spark: SparkSession, units: list[pool.PoolUnit], columns: pool.PoolColumns,
              config: IngestConfig) -> DataFrame:
    """Every row of the units, validated (see _combined)."""
    return _unit_frame(spark, units).mapInArrow(_combined(columns, config), ddl(COMBINED_SCHEMA))


def _write_pool(spark: SparkSession, units: list[pool.PoolUnit], columns: pool.PoolColumns,
                config: IngestConfig, directory: Path) -> DataFrame:
    """read_pool, written to Parquet by the reading tasks themselves, and read back."""
    return materialize_from_tasks(_unit_frame(spark, units), _combined(columns, config), COMBINED_SCHEMA, directory)




_BROADCAST_GROUPS = 2_000_000


def _mark_losers(rows: DataFrame, key: str, order: list[str], reason: str, detail,
                 cached: list[DataFrame]) -> DataFrame:
    """Mark every row but the first (by `order`) of each `key` group as a reject with `reason`.

    Only groups with several rows are looked at: they are found by one narrow aggregation and joined
    back (broadcast while few), so a pool without duplicates pays no sort and no wide shuffle.
    """
    # Repeated keys are found by counting 64-bit hashes of the key (cheaper than the strings); the
    # exact grouping then runs on the few candidate rows only, so a hash collision changes nothing.
    repeated = (rows.groupBy(F.xxhash64(key).alias("_hash")).count().filter("count > 1").select("_hash")
                .persist(StorageLevel.MEMORY_AND_DISK))
    cached.append(repeated)
    if (size := repeated.count()) == 0:
        return rows
    candidates = rows.join(F.broadcast(repeated) if size < _BROADCAST_GROUPS else repeated,
                           F.xxhash64(rows[key]) == repeated["_hash"], "left_semi")
    groups = candidates.groupBy(key).agg(F.min(F.struct(*order)).alias("_keep"))
    joined = rows.join(F.broadcast(groups) if size < _BROADCAST_GROUPS else groups, key, "left")
    loser = F.col("reason").isNull() & F.col("_keep").isNotNull() & (F.struct(*order) != F.col("_keep"))
    return (joined.withColumn("detail", F.when(loser, detail).otherwise(F.col("detail")))
            .withColumn("reason", F.when(loser, F.lit(reason)).otherwise(F.col("reason")))
            .drop("_keep"))


def _mark_duplicates(rows: DataFrame, dedup_key: str, pool_uids: bool, cached: list[DataFrame]) -> DataFrame:
    """Keep one row per dedup key and per uid, the same one whatever the input order.

    Among exact duplicates the smallest uid is kept (then source position); among rows sharing a
    pool-given uid, the smallest (url, caption). A content-derived uid is unique once contents are.
    """
    if dedup_key != "none":
        same = f"same {dedup_key.replace('_', ' and ')} as uid "
        rows = _mark_losers(rows, "dedup_key", ["uid", "source_file", "source_row"], "duplicate",
                            F.concat(F.lit(same), F.col("_keep.uid")), cached)
    if pool_uids or dedup_key == "none":
        rows = _mark_losers(rows, "uid", ["url", "caption", "source_file", "source_row"], "duplicate_uid",
                            F.lit("uid already used by another row"), cached)
    return rows


def _rows_read(raw: DataFrame, units: list[pool.PoolUnit]) -> int:
    """Rows read from the pool; a Parquet file must yield exactly the rows its metadata lists."""
    read = {row["source_file"]: row["count"] for row in raw.groupBy("source_file").count().collect()}
    listed: dict[str, int] = {}
    for unit in units:
        if unit.rows is not None:
            listed[unit.path] = listed.get(unit.path, 0) + unit.rows
    for path, rows in listed.items():
        if read.get(path, 0) != rows:
            raise RuntimeError(f"{path}: read {read.get(path, 0)} rows, its metadata lists {rows}")
    return sum(read.values())


def run_ingest(spark: SparkSession, pool_path: str, run_dir: Path, config: IngestConfig,
               url_col: str | None = None, caption_col: str | None = None, uid_col: str | None = None,
               force: bool = False) -> dict:
    units, columns = pool.resolve(pool_path, url_col, caption_col, uid_col)
    files = sorted({unit.path for unit in units})
    stage_config = {**asdict(config), "columns": asdict(columns)}
    inputs = {"pool": str(pool_path), "files": file_identity([Path(path) for path in files])}

    def body(out_dir: Path) -> StageResult:
        scratch = work_dir(out_dir, "raw")
        cached: list[DataFrame] = []
        try:
            raw = _write_pool(spark, units, columns, config, scratch)
            valid = _mark_duplicates(raw.filter(F.col("reason").isNull()), config.dedup_key,
                                     columns.uid is not None, cached)
            combined = valid.select(*COMBINED_SCHEMA.names).unionByName(raw.filter(F.col("reason").isNotNull()))
            kept, rejected = write_split(combined, out_dir, OUTPUT_COLUMNS, computed=True)
            rows_in = _rows_read(raw, units)
        finally:
            for frame in cached:
                frame.unpersist()
            shutil.rmtree(scratch, ignore_errors=True)
        return StageResult(rows_in=rows_in, rows_out=kept, rejected=rejected,
                           extra={"files": len(files), "units": len(units)})

    return run_stage(run_dir, STAGE, stage_config, inputs, body, force=force)
