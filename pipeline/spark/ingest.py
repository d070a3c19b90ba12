"""Spark binding of ingest: read pool units in parallel, validate, then drop exact duplicates pool-wide."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipeline import pool
from pipeline.ingest import REJECT_SCHEMA, ROW_SCHEMA, IngestConfig, canonicalize
from pipeline.rundir import StageResult, file_identity, run_stage
from pipeline.spark.outputs import ddl, write_split

STAGE = "ingest"
OUTPUT_COLUMNS = ["uid", "url", "caption", "source_file", "source_row"]
_COMBINED = pa.schema(list(ROW_SCHEMA) + [f for f in REJECT_SCHEMA if f.name not in ROW_SCHEMA.names])


def _read_units(columns: pool.PoolColumns, config: IngestConfig):
    def read(batches):
        for batch in batches:
            for encoded in batch.column("unit").to_pylist():
                unit = pool.PoolUnit(**json.loads(encoded))
                for raw in pool.read_unit(unit, columns):
                    good, bad = canonicalize(raw, config)
                    yield from _combined(good, bad)
    return read


def _combined(good: pa.Table, bad: pa.Table):
    """Good rows and rejects in one schema (reason null for good rows), as record batches."""
    for table in (good, bad):
        if table.num_rows:
            columns = [table.column(name) if name in table.column_names else pa.nulls(table.num_rows, field.type)
                       for name, field in zip(_COMBINED.names, _COMBINED)]
            yield from pa.table(columns, schema=_COMBINED).to_batches()


def _unit_frame(spark: SparkSession, units: list[pool.PoolUnit]) -> DataFrame:
    encoded = [(json.dumps(asdict(unit)),) for unit in units]
    parallelism = spark.sparkContext.defaultParallelism
    return spark.createDataFrame(encoded, "unit string").repartition(max(1, min(len(units), 4 * parallelism)))


def _mark_duplicates(rows: DataFrame, dedup_key: str, pool_uids: bool) -> DataFrame:
    """Keep one row per dedup key and per uid, the same one whatever the input order.

    Among exact duplicates the smallest uid is kept (then source position); among rows sharing a
    pool-given uid, the smallest (url, caption). A content-derived uid is unique once contents are.
    """
    if dedup_key != "none":
        by_content = Window.partitionBy("dedup_key").orderBy("uid", "source_file", "source_row")
        rows = rows.withColumn("_rank", F.row_number().over(by_content)).withColumn(
            "_first", F.first("uid").over(by_content))
        duplicate = F.col("_rank") > 1
        rows = rows.withColumn("detail", F.when(duplicate, F.concat(
            F.lit(f"same {dedup_key.replace('_', ' and ')} as uid "), F.col("_first"))).otherwise(F.col("detail")))
        rows = rows.withColumn("reason", F.when(duplicate, F.lit("duplicate")).otherwise(F.col("reason")))
    if pool_uids or dedup_key == "none":
        by_uid = Window.partitionBy("uid").orderBy("url", "caption", "source_file", "source_row")
        rows = rows.withColumn("_uid_rank", F.row_number().over(by_uid))
        duplicate_uid = F.col("reason").isNull() & (F.col("_uid_rank") > 1)
        rows = rows.withColumn("detail", F.when(duplicate_uid, F.lit("uid already used by another row"))
                               .otherwise(F.col("detail")))
        rows = rows.withColumn("reason", F.when(duplicate_uid, F.lit("duplicate_uid")).otherwise(F.col("reason")))
    return rows


def run_ingest(spark: SparkSession, pool_path: str, run_dir: Path, config: IngestConfig,
               url_col: str | None = None, caption_col: str | None = None, uid_col: str | None = None,
               force: bool = False) -> dict:
    units, columns = pool.resolve(pool_path, url_col, caption_col, uid_col)
    files = sorted({unit.path for unit in units})
    stage_config = {**asdict(config), "columns": asdict(columns)}
    inputs = {"pool": str(pool_path), "files": file_identity([Path(path) for path in files])}

    def body(out_dir: Path) -> StageResult:
        read = _read_units(columns, config)
        raw = _unit_frame(spark, units).mapInArrow(read, ddl(_COMBINED))
        valid = _mark_duplicates(raw.filter(F.col("reason").isNull()), config.dedup_key, columns.uid is not None)
        combined = valid.select(*_COMBINED.names).unionByName(raw.filter(F.col("reason").isNotNull()))
        kept, rejected = write_split(combined, out_dir, OUTPUT_COLUMNS)
        return StageResult(rows_in=kept + sum(rejected.values()), rows_out=kept, rejected=rejected,
                           extra={"files": len(files), "units": len(units)})

    return run_stage(run_dir, STAGE, stage_config, inputs, body, force=force)
