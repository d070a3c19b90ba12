"""Spark binding of the NSFW filter: one task per downloaded shard scores its images, then the images validation
kept are split by the threshold. Like embed, it scores every downloaded image; only the kept ones count."""

from __future__ import annotations

import tarfile
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipeline.image.download import finished_shards
from pipeline.image.safety import SafetyConfig, load_detector, nsfw_score
from pipeline.run.directory import StageResult, run_stage
from pipeline.run.stages import STAGES, fingerprints, require_upstream
from pipeline.spark.outputs import ddl, write_split

SAFETY, DOWNLOAD, VALIDATE = STAGES["safety"], STAGES["download"], STAGES["validate"]
_SCORES = pa.schema([("uid", pa.string()), ("nsfw_score", pa.float32()), ("error", pa.string())])
_DETECTOR: list = []  # one detector per Python worker


def score_shard(download_dir: Path, shard: int) -> pa.RecordBatch:
    """The NSFW score of every image img2dataset stored in one shard (an error message where it fails)."""
    if not _DETECTOR:
        _DETECTOR.append(load_detector())
    listed = pq.read_table(download_dir / f"{shard:05d}.parquet", columns=["key", "uid", "status"]).to_pylist()
    wanted = {row["key"]: row["uid"] for row in listed if row["status"] == "success"}
    rows = []
    with tarfile.open(download_dir / f"{shard:05d}.tar") as tar:
        for member in tar:
            key, _, extension = member.name.rpartition(".")
            if key in wanted and extension in ("jpg", "png", "webp"):
                try:
                    rows.append({"uid": wanted[key], "nsfw_score": nsfw_score(_DETECTOR[0],
                                                                              tar.extractfile(member).read())})
                except Exception as err:  # noqa: BLE001 - the detector's failure on one image is that image's
                    rows.append({"uid": wanted[key], "error": f"{type(err).__name__}: {err}"[:200]})
    return pa.RecordBatch.from_pylist(rows, schema=_SCORES)


def _score_shards(download_dir: str):
    def run(batches):
        for batch in batches:
            for shard in batch.column("shard").to_pylist():
                yield score_shard(Path(download_dir), shard)
    return run


def run_safety(spark: SparkSession, run_dir: Path, config: SafetyConfig, force: bool = False) -> dict:
    """Score the images validation kept; those at or above the threshold are rejects with reason nsfw."""
    run_dir = Path(run_dir)
    manifests = require_upstream(run_dir, SAFETY.name)
    load_detector()  # a missing extra is a clear error before any task starts
    download_dir = DOWNLOAD.path(run_dir)

    def body(out_dir: Path) -> StageResult:
        shards = finished_shards(download_dir)
        frame = spark.createDataFrame([(shard,) for shard in shards], "shard int").repartition(
            max(1, min(len(shards), spark.sparkContext.defaultParallelism)))
        scores = frame.mapInArrow(_score_shards(str(download_dir)), ddl(_SCORES))
        kept = spark.read.parquet(str(VALIDATE.path(run_dir))).filter(F.col("status") == "kept").select("uid")
        rows = kept.join(scores, "uid", "left")
        unscored = F.col("nsfw_score").isNull()
        reason = (F.when(unscored, F.lit("unreadable"))
                  .when(F.col("nsfw_score") >= config.nsfw_threshold, F.lit("nsfw")))
        detail = (F.when(unscored, F.coalesce(F.col("error"), F.lit("not in the downloaded shards")))
                  .otherwise(F.format_string("NSFW score %.3f (threshold %s)", F.col("nsfw_score"),
                                             F.lit(f"{config.nsfw_threshold:g}"))))
        rows = rows.select("uid", "nsfw_score", reason.alias("reason"), detail.alias("detail"))
        kept_rows, rejected = write_split(rows, out_dir, ["uid", "nsfw_score"])
        return StageResult(rows_in=manifests[VALIDATE.folder]["rows_out"], rows_out=kept_rows, rejected=rejected,
                           extra={"detector": "nudenet 320n (AGPL-3.0)"})

    return run_stage(run_dir, SAFETY.folder, asdict(config), fingerprints(manifests), body, force=force)
