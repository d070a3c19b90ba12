"""The closed-loop study's data: a long-tailed pool served on 127.0.0.1, downloaded whole and put through the
pipeline's image stages, its captions through the text stages. The study (pipeline.experiments.study) composes
every arm from these stage outputs.

DIR/pool   the pool (pipeline.experiments.longtail): images/, pool.jsonl, labels.parquet, the held-out
           validation.tar and the class-balanced reference/ shards
DIR/text   the text stages on the pool's captions: ingest, matches (the entry ids of each caption), counts
DIR/images every url of the pool downloaded by img2dataset as it is (the raw arm), then validate, embed, dedup
           (SemDeDup at each eps of the grid) and decontaminate (against CIFAR-10's test set)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from pipeline.experiments.image_server import SERVED_FROM, ImageServer
from pipeline.experiments.longtail import HeldOut, LongTailDesign, write_pool
from pipeline.image.check import ImageLimits
from pipeline.image.contamination import DecontaminationConfig
from pipeline.image.download import DownloadOptions, run_download, selection_from_urls
from pipeline.image.neardup import MAX_PHASH_DISTANCE
from pipeline.run.stages import IMAGES_RUN, STAGES, TEXT_RUN
from pipeline.semantic.embedding import EmbedConfig
from pipeline.semantic.semdedup import DedupConfig
from pipeline.spark.curate import TextCurationConfig, curate_text

POOL = STAGES["pool"]


@dataclass(frozen=True)
class ExperimentData:
    design: LongTailDesign
    labelled: Path  # labelled photos: CIFAR-10's train tar, or class folders
    classes: tuple[str, ...]
    metadata: str
    eps: tuple[float, ...]  # the SemDeDup thresholds the study may choose from
    held_out: HeldOut = HeldOut()
    evaluation: tuple[str, ...] = ()  # images the pool is decontaminated against (none: not decontaminated)
    force: bool = False


def download_options(parallelism: int) -> DownloadOptions:
    """The photos as served, bytes untouched (exact copies stay exact), in shards of 1,000."""
    return DownloadOptions(resize_mode="no", skip_reencode=True, processes_count=parallelism, thread_count=16,
                           allow_network=SERVED_FROM, timeout=5, number_sample_per_shard=1000)


def image_stages(spark: SparkSession, run: Path, data: ExperimentData) -> dict[str, dict]:
    """The pipeline's image stages on the whole downloaded pool; SemDeDup computes every eps of the grid."""
    from pipeline.spark.decontaminate import run_decontaminate
    from pipeline.spark.dedup import run_dedup
    from pipeline.spark.embed import run_embed
    from pipeline.spark.validate import run_validate

    limits = ImageLimits(min_side=0, max_aspect=float("inf"))  # CIFAR-10's photos are 32 x 32
    manifests = {STAGES["validate"].folder: run_validate(spark, run, limits, MAX_PHASH_DISTANCE, force=data.force),
                 STAGES["embed"].folder: run_embed(spark, run, EmbedConfig(), force=data.force),
                 STAGES["dedup"].folder: run_dedup(spark, run, DedupConfig(eps=data.eps, clusters=10),
                                                   force=data.force)}
    if data.evaluation:
        manifests[STAGES["decontaminate"].folder] = run_decontaminate(
            spark, run, DecontaminationConfig(data.evaluation), force=data.force)
    return manifests


def prepare_experiment(spark: SparkSession, run: Path, data: ExperimentData) -> dict[str, dict]:
    """Write the pool, run the text stages on its captions and the image stages on all of it; stages already
    current are skipped. Returns the manifests: `pool`, `text` (by stage), `raw` (by stage)."""
    run = Path(run)
    pool = write_pool(run, data.design, data.labelled, data.classes, data.held_out, force=data.force)
    text = curate_text(spark, TextCurationConfig(pool=str(POOL.file(run, "pool")), metadata=data.metadata,
                                                 out=str(run / TEXT_RUN), force=data.force))
    table = pq.read_table(POOL.file(run, "labels"), columns=["url", "caption", "name"])
    served = {name: POOL.file(run, "images") / name for name in table.column("name").to_pylist()}
    selection_from_urls(run / IMAGES_RUN, table.column("url").to_pylist(), table.column("caption").to_pylist())
    with ImageServer(served, port=pool["port"]):
        raw = {STAGES["download"].folder: run_download(run / IMAGES_RUN, download_options(
            spark.sparkContext.defaultParallelism), force=data.force)}
    raw.update(image_stages(spark, run / IMAGES_RUN, data))
    return {POOL.folder: pool, TEXT_RUN: text, IMAGES_RUN: raw}
