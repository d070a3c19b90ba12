"""Spark binding of validation: inspect the downloaded images shard by shard, then remove duplicates.

One task reads one img2dataset shard (its tar and parquet) and inspects every successful image. Exact
duplicates (same sha256) are grouped by Spark; near-exact candidates come from a join on perceptual-hash
bands, and the few verified pairs are grouped on the driver (pipeline.image.neardup).
"""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipeline.image.check import ImageLimits, inspect_image
from pipeline.image.download import finished_shards
from pipeline.image.neardup import BAND_BITS, BANDS, duplicate_groups, losers
from pipeline.run.directory import StageResult, run_stage
from pipeline.run.stages import STAGES, fingerprints, require_upstream
from pipeline.spark.outputs import ddl, materialize, reason_counts, work_dir

VALIDATE, DOWNLOAD = STAGES["validate"], STAGES["download"]
IMAGE_EXTENSIONS = ("jpg", "png", "webp")
FACTS_SCHEMA = pa.schema([
    ("uid", pa.string()), ("key", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("sha256", pa.string()), ("phash", pa.int64()), ("reason", pa.string()), ("detail", pa.string()),
])
OUTPUT_COLUMNS = ["uid", "key", "width", "height", "sha256", "phash", "status", "reason", "detail", "duplicate_of"]


def shard_facts(download_dir: Path, shard: int, limits: ImageLimits) -> pa.RecordBatch:
    """Facts of every image img2dataset stored in one shard; an image listed but absent is a reject."""
    listed = pq.read_table(download_dir / f"{shard:05d}.parquet",
                           columns=["key", "uid", "status", "original_width", "original_height"]).to_pylist()
    wanted = {row["key"]: row for row in listed if row["status"] == "success"}
    rows = []
    with tarfile.open(download_dir / f"{shard:05d}.tar") as tar:
        for member in tar:
            key, _, extension = member.name.rpartition(".")
            if extension not in IMAGE_EXTENSIONS or key not in wanted:
                continue
            info = wanted.pop(key)
            facts = inspect_image(tar.extractfile(member).read(), limits,
                                  (info["original_width"], info["original_height"]))
            rows.append({"uid": info["uid"], "key": key, **asdict(facts)})
    rows.extend({"uid": info["uid"], "key": key, "reason": "missing_image",
                 "detail": f"listed as downloaded but not in {shard:05d}.tar"} for key, info in wanted.items())
    return pa.RecordBatch.from_pylist(rows, schema=FACTS_SCHEMA)


def _inspect_shards(download_dir: str, limits: ImageLimits):
    def run(batches):
        for batch in batches:
            for shard in batch.column("shard").to_pylist():
                yield shard_facts(Path(download_dir), shard, limits)
    return run


def _exact_duplicates(valid: DataFrame) -> DataFrame:
    """uid, duplicate_of for every image whose bytes equal those of an image kept before it."""
    order = Window.partitionBy("sha256").orderBy(F.desc("pixels"), "uid")
    ranked = valid.select("uid", "sha256", F.first("uid").over(order).alias("duplicate_of"))
    return ranked.filter(F.col("uid") != F.col("duplicate_of")).select("uid", "duplicate_of")


def _near_duplicates(spark: SparkSession, distinct: DataFrame, max_distance: int) -> DataFrame:
    """uid, duplicate_of for images within max_distance pHash bits of a kept one."""
    bands = distinct.select("uid", "phash", F.posexplode(F.array(*[
        F.shiftrightunsigned("phash", BAND_BITS * band).bitwiseAND((1 << BAND_BITS) - 1) for band in range(BANDS)
    ])).alias("band", "value"))
    left, right = bands.alias("left"), bands.alias("right")
    same_band = (F.col("left.band") == F.col("right.band")) & (F.col("left.value") == F.col("right.value"))
    pairs = (left.join(right, same_band & (F.col("left.uid") < F.col("right.uid")))
             .filter(F.bit_count(F.col("left.phash").bitwiseXOR(F.col("right.phash"))) <= max_distance)
             .select(F.col("left.uid").alias("a"), F.col("right.uid").alias("b")).distinct().collect())
    groups = duplicate_groups((row["a"], row["b"]) for row in pairs)
    members = sorted({uid for group in groups for uid in group})
    pixels = {row["uid"]: row["pixels"] for row in
              distinct.filter(F.col("uid").isin(members)).select("uid", "pixels").collect()} if members else {}
    replaced = sorted(losers(groups, pixels).items())
    return spark.createDataFrame(replaced, "uid string, duplicate_of string")


def _validate_into(spark: SparkSession, download_dir: Path, out_dir: Path, limits: ImageLimits,
                   max_distance: int) -> tuple[int, dict[str, int]]:
    shard_ids = finished_shards(download_dir)
    shards = spark.createDataFrame([(shard,) for shard in shard_ids], "shard int")
    shards = shards.repartition(max(1, min(len(shard_ids), 4 * spark.sparkContext.defaultParallelism)))
    facts = materialize(shards.mapInArrow(_inspect_shards(str(download_dir), limits), ddl(FACTS_SCHEMA))
                        .withColumn("pixels", F.col("width").cast("long") * F.col("height")),
                        work_dir(out_dir, "facts"))
    valid = facts.filter(F.col("reason").isNull())
    exact = _exact_duplicates(valid)
    near = _near_duplicates(spark, valid.join(exact, "uid", "left_anti"), max_distance)
    marked = (facts.join(exact.withColumn("exact", F.lit("duplicate")), "uid", "left")
              .join(near.withColumnRenamed("duplicate_of", "near_of").withColumn("near", F.lit("near_duplicate")),
                    "uid", "left"))
    detail = F.coalesce("detail", F.when(F.col("exact").isNotNull(), F.lit("same sha256")),
                        F.when(F.col("near").isNotNull(), F.lit(f"perceptual hash within {max_distance} bits")))
    result = marked.select("uid", "key", "width", "height", "sha256", "phash",
                           F.coalesce("reason", "exact", "near").alias("reason"), detail.alias("detail"),
                           F.coalesce("duplicate_of", "near_of").alias("duplicate_of"))
    result = result.withColumn("status", F.when(F.col("reason").isNull(), "kept").otherwise("rejected"))
    result = materialize(result.select(*OUTPUT_COLUMNS), work_dir(out_dir, "result"))
    kept, rejected = reason_counts(result)
    result.coalesce(max(1, spark.sparkContext.defaultParallelism)).write.mode("overwrite").parquet(str(out_dir))
    return kept, rejected


def run_validate(spark: SparkSession, run_dir: Path, limits: ImageLimits, max_distance: int,
                 force: bool = False) -> dict:
    run_dir = Path(run_dir)
    manifests = require_upstream(run_dir, VALIDATE.name)
    download_dir, upstream = DOWNLOAD.path(run_dir), manifests[DOWNLOAD.folder]
    config = {"limits": asdict(limits), "max_phash_distance": max_distance, "keep_rule": "largest source, then uid"}

    def body(out_dir: Path) -> StageResult:
        try:
            kept, rejected = _validate_into(spark, download_dir, out_dir, limits, max_distance)
        finally:
            for name in ("facts", "result"):
                shutil.rmtree(work_dir(out_dir, name), ignore_errors=True)
        # rows_in is what the download stage delivered: the check in = out + rejected covers every image
        return StageResult(rows_in=upstream["rows_out"], rows_out=kept, rejected=rejected)

    return run_stage(run_dir, VALIDATE.folder, config, fingerprints(manifests), body, force=force)
