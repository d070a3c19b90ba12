"""Parsed arguments become the configs of the cores, here and nowhere else; values a config cannot hold are
refused with the option's name."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.crawl.extract import ExtractConfig
from pipeline.errors import UserInputError
from pipeline.experiments.longtail import LongTailDesign
from pipeline.image.check import ImageLimits
from pipeline.image.contamination import DecontaminationConfig
from pipeline.image.download import DownloadOptions
from pipeline.image.network import networks
from pipeline.image.safety import SafetyConfig
from pipeline.semantic.embedding import EmbedConfig
from pipeline.semantic.score_filters import ScoreFilterConfig
from pipeline.semantic.semdedup import AUTO, DedupConfig, eps_list
from pipeline.spark.crawl import CrawlConfig
from pipeline.spark.curate import TextCurationConfig
from pipeline.text.balancing import BalanceConfig
from pipeline.text.ingest import IngestConfig
from pipeline.vocab.bigrams import BigramThresholds


def crawl_config(args: argparse.Namespace) -> CrawlConfig:
    for option in ("min_words", "min_chars"):
        if getattr(args, option) < 0:
            raise UserInputError(f"--{option.replace('_', '-')} must not be negative")
    if args.languages and args.no_language_id:
        raise UserInputError("--languages needs language identification: drop --no-language-id")
    return CrawlConfig(ExtractConfig(format=args.format, titles=args.titles, language_id=not args.no_language_id),
                       languages=args.languages, min_words=args.min_words, min_chars=args.min_chars)


def ingest_config(args: argparse.Namespace) -> IngestConfig:
    identify = args.identify_language or getattr(args, "worldwide", None) is not None
    return IngestConfig(max_caption_bytes=args.max_caption_bytes, dedup_key=args.dedup, drop_pii=args.drop_pii,
                        identify_language=identify)


def _t_per_language(path: str | None) -> tuple[tuple[str, float], ...]:
    if path is None:
        return ()
    try:
        given = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserInputError(f"{path}: --t-per-language needs a JSON object of language -> t ({error})") from None
    if not isinstance(given, dict):
        raise UserInputError(f"{path}: --t-per-language needs a JSON object of language -> t")
    for language, t in given.items():
        if language == "en":
            raise UserInputError(f"{path}: English's t is --t, not an entry of --t-per-language")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
            raise UserInputError(f"{path}: the t of {language!r} must be a positive number, not {t!r}")
    return tuple(sorted((language, float(t)) for language, t in given.items()))


def balance_config(args: argparse.Namespace) -> BalanceConfig:
    per_language = _t_per_language(args.t_per_language)
    if args.target_size is not None:
        if args.target_size <= 0:
            raise UserInputError("--target-size must be positive")
        return BalanceConfig(t=None, target_size=args.target_size, seed=args.seed, t_per_language=per_language)
    if args.t is None:
        return BalanceConfig(seed=args.seed, t_per_language=per_language)
    if args.t <= 0:
        raise UserInputError("--t must be positive")
    return BalanceConfig(t=args.t, seed=args.seed, t_per_language=per_language)


def text_curation_config(args: argparse.Namespace) -> TextCurationConfig:
    return TextCurationConfig(
        pool=args.pool, metadata=args.metadata, out=args.out, mode=args.mode, balance=balance_config(args),
        ingest=ingest_config(args), url_col=args.url_col, caption_col=args.caption_col, uid_col=args.uid_col,
        worldwide=args.worldwide, force=args.force)


def bigram_thresholds(args: argparse.Namespace) -> BigramThresholds:
    if args.min_count < 1:
        raise UserInputError("--min-count must be at least 1")
    return BigramThresholds(min_count=args.min_count, min_pmi=args.min_pmi)


def download_options(args: argparse.Namespace, parallelism: int, local: bool) -> DownloadOptions:
    return DownloadOptions(
        image_size=args.image_size, resize_mode=args.resize_mode, resize_only_if_bigger=args.resize_only_if_bigger,
        encode_format=args.encode_format, encode_quality=args.encode_quality, skip_reencode=args.skip_reencode,
        processes_count=args.processes or parallelism, thread_count=args.threads,
        timeout=args.timeout, retries=args.retries, number_sample_per_shard=args.samples_per_shard,
        # In local mode img2dataset's own process pool is the leanest; on a cluster its Spark distributor
        # runs the shards on the executors through the job's session.
        distributor="multiprocessing" if local else "pyspark",
        allow_network=tuple(str(network) for network in networks(tuple(args.allow_network))),
        user_agent_token=args.user_agent_token, exclude_domains=args.exclude_domains,
        include_domains=args.include_domains)


def image_limits(args: argparse.Namespace) -> ImageLimits:
    if not 0 <= args.max_phash_distance <= 64:
        raise UserInputError("--max-phash-distance must be between 0 and 64")
    return ImageLimits(min_side=args.min_side, max_aspect=args.max_aspect, max_pixels=args.max_pixels)


def samples_per_shard(args: argparse.Namespace) -> int:
    if args.samples_per_shard < 1:
        raise UserInputError("--samples-per-shard must be at least 1")
    return args.samples_per_shard


def embed_config(args: argparse.Namespace) -> EmbedConfig:
    return EmbedConfig(model=args.model, pretrained=args.pretrained, checkpoint=args.checkpoint,
                       batch_size=args.batch_size)


def dedup_config(args: argparse.Namespace) -> DedupConfig:
    if AUTO in args.eps:
        if len(args.eps) > 1:
            raise UserInputError(f"--eps {AUTO} picks one eps itself: give it alone, or numbers only")
        return DedupConfig(eps=AUTO, clusters=args.clusters, seed=args.seed, backend=args.backend)
    try:
        values = eps_list([float(value) for value in args.eps])
    except ValueError:
        raise UserInputError(f"--eps takes numbers between 0 and 1 or '{AUTO}', got {' '.join(args.eps)}") from None
    return DedupConfig(eps=values, clusters=args.clusters, seed=args.seed, backend=args.backend)


def decontamination_config(args: argparse.Namespace) -> DecontaminationConfig:
    if not 0 <= args.max_phash_distance <= 64:
        raise UserInputError("--max-phash-distance must be between 0 and 64")
    if not 0 < args.semantic_threshold < 1:
        raise UserInputError(f"--semantic-threshold must be between 0 and 1, got {args.semantic_threshold:g}")
    return DecontaminationConfig(eval=tuple(args.eval), max_phash_distance=args.max_phash_distance,
                                 semantic_threshold=args.semantic_threshold)


def safety_config(args: argparse.Namespace) -> SafetyConfig:
    if not 0 <= args.nsfw_threshold <= 1:
        raise UserInputError(f"--nsfw-threshold must be between 0 and 1, got {args.nsfw_threshold:g}")
    return SafetyConfig(nsfw_threshold=args.nsfw_threshold)


def score_filter_config(args: argparse.Namespace) -> ScoreFilterConfig:
    return ScoreFilterConfig(clip_score_min=args.clip_score_min, clip_score_top=args.clip_score_top,
                             target_images=tuple(args.image_based), centroids=args.centroids,
                             density_prune=args.density_prune, density_clusters=args.density_clusters,
                             density_neighbours=args.density_neighbours, temperature=args.temperature,
                             seed=args.seed, backend=args.backend)


def long_tail_design(args: argparse.Namespace) -> LongTailDesign:
    if not Path(args.photos).exists():
        raise UserInputError(f"{args.photos}: labelled photos not found (CIFAR-10's train tar or class folders)")
    return LongTailDesign(head_rows=args.head_rows, imbalance=args.imbalance, head_copy_share=args.copy_share,
                          no_class_share=args.no_class_share, seed=args.pool_seed)
