"""Spark binding of shard writing: number the final samples by uid, one task writes each shard."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.errors import UserInputError
from pipeline.image.shards import INDEX_SCHEMA, shard_name, stored_images, write_shard
from pipeline.run.directory import StageResult, run_stage
from pipeline.run.stages import STAGES, fingerprints, require_upstream, stale_inputs
from pipeline.spark.outputs import ddl

SHARDS, REBALANCE, VALIDATE, DOWNLOAD = (STAGES[name] for name in ("shards", "rebalance", "validate", "download"))


def _final_samples(spark: SparkSession, run_dir: Path) -> DataFrame:
    """Each sample of DIR/rebalance with its image facts and where img2dataset stored its image."""
    final = spark.read.parquet(str(REBALANCE.path(run_dir)))
    facts = (spark.read.parquet(str(VALIDATE.path(run_dir))).filter(F.col("status") == "kept")
             .select("uid", "key", "width", "height", "sha256", "phash"))
    stored = (spark.read.parquet(str(DOWNLOAD.file(run_dir, "status"))).filter(F.col("status") == "success")
              .select("uid", F.col("shard").alias("download_shard")))
    return final.join(facts, "uid").join(stored, "uid")


def _shard_numbers(samples: DataFrame, samples_per_shard: int) -> DataFrame:
    """uid -> output shard: position in uid order, divided by the shard size (scales: no single partition)."""
    ordered = samples.select("uid").orderBy("uid").rdd.zipWithIndex()
    return ordered.map(lambda pair: (pair[0][0], pair[1] // samples_per_shard)).toDF("uid string, out_shard long")


def _writer(out_dir: str, download_dir: str):
    def write(table: pa.Table) -> pa.Table:
        rows = table.to_pylist()
        path = Path(out_dir) / shard_name(rows[0]["out_shard"])
        images = stored_images(rows, Path(download_dir))
        return pa.Table.from_pylist(write_shard(path, rows, images), schema=INDEX_SCHEMA)
    return write


def run_write_shards(spark: SparkSession, run_dir: Path, out: Path, samples_per_shard: int,
                     force: bool = False) -> dict:
    run_dir, out = Path(run_dir), Path(out)
    manifests = require_upstream(run_dir, SHARDS.name)
    changed = stale_inputs(run_dir, REBALANCE.name)
    if changed:
        raise UserInputError(f"{run_dir}: {' and '.join(changed)} changed after rebalance ran; rerun "
                             f"{REBALANCE.job} before writing shards")

    def body(out_dir: Path) -> StageResult:
        samples = _final_samples(spark, run_dir)
        numbered = samples.join(_shard_numbers(samples, samples_per_shard), "uid")
        written = (numbered.groupBy("out_shard")
                   .applyInArrow(_writer(str(out_dir), str(DOWNLOAD.path(run_dir))), ddl(INDEX_SCHEMA)))
        index = samples.join(written, "uid").orderBy("uid").toArrow()
        pq.write_table(index.drop_columns(["download_shard", "key"]), out_dir / SHARDS.files["index"])
        shard_sizes = sorted(pa.TableGroupBy(index, "shard").aggregate([("uid", "count")]).to_pylist(),
                             key=lambda row: row["shard"])
        stats = {"samples": index.num_rows, "shards": len(shard_sizes),
                 "image_bytes": int(pc.sum(index.column("bytes")).as_py() or 0),
                 "samples_per_shard": {row["shard"]: row["uid_count"] for row in shard_sizes}}
        (out_dir / SHARDS.files["stats"]).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        return StageResult(rows_in=manifests[REBALANCE.folder]["rows_out"], rows_out=index.num_rows,
                           extra={key: stats[key] for key in ("shards", "image_bytes")})

    # The shards go where the user says (--out), not necessarily into the run directory.
    return run_stage(out.parent, out.name, {"samples_per_shard": samples_per_shard, "run": str(run_dir.resolve())},
                     fingerprints(manifests), body, force=force)
