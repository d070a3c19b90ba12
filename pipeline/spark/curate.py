"""Curation on Spark into one run directory: the text stages (ingest -> match -> count -> balance), then the
image stages (download -> validate -> embed -> dedup -> [decontaminate] -> rebalance -> shards)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline.image.check import ImageLimits
from pipeline.image.contamination import DecontaminationConfig
from pipeline.image.download import DownloadOptions
from pipeline.image.neardup import MAX_PHASH_DISTANCE
from pipeline.image.shards import SAMPLES_PER_SHARD
from pipeline.run.stages import STAGES
from pipeline.semantic.embedding import EmbedConfig
from pipeline.semantic.semdedup import DedupConfig
from pipeline.spark.balance import run_balance
from pipeline.spark.count import run_count
from pipeline.spark.ingest import run_ingest
from pipeline.spark.match import run_match
from pipeline.text.balancing import BalanceConfig
from pipeline.text.ingest import IngestConfig
from pipeline.text.matching import DEFAULT_MODE
from pipeline.text.vocabulary import load_vocabulary


@dataclass(frozen=True)
class TextCurationConfig:
    """Everything a text curation run depends on."""

    pool: str
    metadata: str
    out: str
    mode: str = DEFAULT_MODE
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    url_col: str | None = None
    caption_col: str | None = None
    uid_col: str | None = None
    worldwide: str | None = None  # a folder of per-language vocabularies: each caption matched in its language
    force: bool = False


def curate_text(spark: SparkSession, config: TextCurationConfig) -> dict[str, dict]:
    """Run the four text stages; each is skipped when its output is already current."""
    run_dir = Path(config.out)
    vocabulary = load_vocabulary(config.metadata, config.worldwide)
    ingest, match, count, balance = (STAGES[name].folder for name in ("ingest", "match", "count", "balance"))
    manifests = {ingest: run_ingest(spark, config.pool, run_dir, config.ingest, config.url_col, config.caption_col,
                                    config.uid_col, force=config.force)}
    manifests[match] = run_match(spark, run_dir, vocabulary, config.mode, force=config.force)
    manifests[count] = run_count(run_dir, vocabulary, force=config.force)
    manifests[balance] = run_balance(spark, run_dir, config.balance, force=config.force)
    return manifests


@dataclass(frozen=True)
class ImageCurationConfig:
    download: DownloadOptions = field(default_factory=DownloadOptions)
    limits: ImageLimits = field(default_factory=ImageLimits)
    max_phash_distance: int = MAX_PHASH_DISTANCE
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontaminate: DecontaminationConfig | None = None  # no evaluation set: not decontaminated
    samples_per_shard: int = SAMPLES_PER_SHARD


def curate_images(spark: SparkSession, run_dir: Path, balance: BalanceConfig, config: ImageCurationConfig,
                  force: bool = False) -> dict[str, dict]:
    """The image stages of a run whose text curation is done; its urls must be reachable while this runs.

    Shards go to DIR/shards. Each stage is skipped when its output is already current.
    """
    from pipeline.image.download import run_download
    from pipeline.spark.decontaminate import run_decontaminate
    from pipeline.spark.dedup import run_dedup
    from pipeline.spark.embed import run_embed
    from pipeline.spark.rebalance import run_rebalance
    from pipeline.spark.shards import run_write_shards
    from pipeline.spark.validate import run_validate

    run_dir = Path(run_dir)
    download, validate, embed, dedup, rebalance, shards = (
        STAGES[name] for name in ("download", "validate", "embed", "dedup", "rebalance", "shards"))
    manifests = {download.folder: run_download(run_dir, config.download, force=force)}
    manifests[validate.folder] = run_validate(spark, run_dir, config.limits, config.max_phash_distance, force=force)
    manifests[embed.folder] = run_embed(spark, run_dir, config.embed, force=force)
    manifests[dedup.folder] = run_dedup(spark, run_dir, config.dedup, force=force)
    if config.decontaminate is not None:
        manifests[STAGES["decontaminate"].folder] = run_decontaminate(spark, run_dir, config.decontaminate,
                                                                      force=force)
    manifests[rebalance.folder] = run_rebalance(spark, run_dir, balance, force=force)
    manifests[shards.folder] = run_write_shards(spark, run_dir, shards.path(run_dir), config.samples_per_shard,
                                                force=force)
    return manifests
