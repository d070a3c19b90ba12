"""The closed-loop experiment's data: a long-tailed pool served on 127.0.0.1, curated by the pipeline and taken raw.

DIR/pool      the pool (pipeline.experiments.longtail): images/, pool.jsonl (url, caption), labels.parquet
DIR/curated   the pipeline's run on the pool: text stages, download, validate, embed, dedup, decontaminate
              (against CIFAR-10's test set), rebalance, shards/ (curated arm)
DIR/raw       every url of the pool downloaded by img2dataset as it is: download/*.tar (raw arm)

Both arms are downloaded with the same img2dataset options, so the images differ only by what curation did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from pipeline.experiments.image_server import SERVED_FROM, ImageServer
from pipeline.experiments.longtail import LongTailDesign, write_pool
from pipeline.image.check import ImageLimits
from pipeline.image.contamination import DecontaminationConfig
from pipeline.image.download import DownloadOptions, run_download, selection_from_urls
from pipeline.run.stages import CURATED_ARM, RAW_ARM, STAGES
from pipeline.semantic.semdedup import DedupConfig
from pipeline.spark.curate import ImageCurationConfig, TextCurationConfig, curate_images, curate_text
from pipeline.text.balancing import BalanceConfig


@dataclass(frozen=True)
class ExperimentData:
    design: LongTailDesign
    labelled: Path  # labelled photos: CIFAR-10's train tar, or class folders
    classes: tuple[str, ...]
    metadata: str
    t: float
    evaluation: tuple[str, ...] = ()  # images the curated arm is decontaminated against (none: not decontaminated)
    force: bool = False


def download_options(parallelism: int, samples_per_shard: int) -> DownloadOptions:
    """The photos as served, bytes untouched (exact copies stay exact), in many small shards."""
    return DownloadOptions(resize_mode="no", skip_reencode=True, processes_count=parallelism, thread_count=16,
                           allow_network=SERVED_FROM,
                           timeout=5, number_sample_per_shard=samples_per_shard)


def prepare_experiment(spark: SparkSession, run: Path, data: ExperimentData) -> dict[str, dict]:
    """Write the pool, curate it into DIR/curated and download it raw into DIR/raw; stages already current
    are skipped. Returns the manifests by name (`pool`, the curated run's stages, `raw`)."""
    run = Path(run)
    pool = write_pool(run, data.design, data.labelled, data.classes, force=data.force)
    parallelism = spark.sparkContext.defaultParallelism
    balance = BalanceConfig(t=data.t, seed=0)
    images = ImageCurationConfig(download=download_options(parallelism, 250),
                                 limits=ImageLimits(min_side=0, max_aspect=float("inf")),
                                 dedup=DedupConfig(clusters=10), samples_per_shard=250,
                                 decontaminate=DecontaminationConfig(data.evaluation) if data.evaluation else None)
    pool_stage = STAGES["pool"]
    labels = pq.read_table(pool_stage.file(run, "labels"), columns=["url", "caption", "name"])
    served = {name: pool_stage.file(run, "images") / name for name in labels.column("name").to_pylist()}
    with ImageServer(served, port=pool["port"]):
        manifests = {pool_stage.folder: pool}
        manifests.update(curate_text(spark, TextCurationConfig(
            pool=str(pool_stage.file(run, "pool")), metadata=data.metadata, out=str(run / CURATED_ARM),
            balance=balance, force=data.force)))
        manifests.update(curate_images(spark, run / CURATED_ARM, balance, images, force=data.force))
        selection_from_urls(run / RAW_ARM, labels.column("url").to_pylist(), labels.column("caption").to_pylist())
        manifests[RAW_ARM] = run_download(run / RAW_ARM, download_options(parallelism, 1000), force=data.force)
    return manifests
