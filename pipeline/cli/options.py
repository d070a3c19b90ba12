"""The jobs' option groups. Every default is read from the config dataclass it fills (see configs.py), so each
default is written once, beside the core that uses it."""

from __future__ import annotations

import argparse
from typing import Callable

from pipeline import REPO
from pipeline.crawl.extract import FORMATS, ExtractConfig
from pipeline.errors import run_job
from pipeline.experiments.arms import STUDY_EPS
from pipeline.experiments.longtail import CIFAR10_TEST, CIFAR10_TRAIN, HeldOut, LongTailDesign
from pipeline.image.check import ImageLimits
from pipeline.image.contamination import SEMANTIC_THRESHOLD
from pipeline.image.download import DownloadOptions
from pipeline.image.neardup import MAX_PHASH_DISTANCE
from pipeline.image.safety import NSFW_THRESHOLD
from pipeline.image.shards import SAMPLES_PER_SHARD
from pipeline.semantic.backends import BACKENDS
from pipeline.semantic.embedding import EmbedConfig
from pipeline.semantic.score_filters import ScoreFilterConfig
from pipeline.semantic.semdedup import AUTO, DedupConfig
from pipeline.semantic.separation import MAX_FALSE_MERGE
from pipeline.spark.crawl import CrawlConfig
from pipeline.text.balancing import BalanceConfig
from pipeline.text.ingest import DEDUP_COLUMNS, IngestConfig
from pipeline.text.matching import DEFAULT_MODE, MODES
from pipeline.text.pool import SAMPLE_POOL
from pipeline.text.vocabulary import WORLDWIDE_METADATA
from pipeline.vocab.bigrams import BigramThresholds
from pipeline.vocab.entries import SHIPPED_VOCABULARY


def add_pool_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", default=str(SAMPLE_POOL),
                        help="pool file or directory: Parquet, JSON lines, TSV/CSV, img2dataset output")
    parser.add_argument("--url-col", help="url column (default: url/URL found automatically)")
    parser.add_argument("--caption-col", help="caption column (default: caption/TEXT found automatically)")
    parser.add_argument("--uid-col", help="the pool's own id column (default: uid/key if present)")
    ingest = IngestConfig()
    parser.add_argument("--max-caption-bytes", type=int, default=ingest.max_caption_bytes,
                        help=f"longer captions are rejected (default {ingest.max_caption_bytes})")
    parser.add_argument("--dedup", choices=(*DEDUP_COLUMNS, "none"), default=ingest.dedup_key,
                        help=f"exact duplicates to drop at ingest (default: {ingest.dedup_key})")
    parser.add_argument("--identify-language", action="store_true",
                        help="give each caption a language column (fastText lid.176) when the pool has none")
    parser.add_argument("--drop-pii", action="store_true",
                        help="reject captions holding an e-mail address or a phone number (reason pii); "
                             "without it they are kept and counted in the manifest")


def add_metadata_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metadata", default=str(SHIPPED_VOCABULARY),
                        help="vocabulary: JSON list or one entry per line, optionally .gz")
    parser.add_argument("--mode", choices=MODES, default=DEFAULT_MODE,
                        help="matching semantics (metaclip = MetaCLIP v1 exactly)")
    parser.add_argument("--worldwide", nargs="?", const=str(WORLDWIDE_METADATA), metavar="DIR",
                        help="MetaCLIP 2: match each caption against its language's vocabulary (DIR/<language>.txt.gz, "
                             f"default {WORLDWIDE_METADATA.relative_to(REPO)}; English's is --metadata) and balance "
                             "each language with its own t; captions get their language identified when the pool "
                             "has none")


def add_balance_options(parser: argparse.ArgumentParser) -> None:
    balance = BalanceConfig()
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--t", type=float, help=f"per-entry cap t (default {balance.t:g}, MetaCLIP 400M)")
    group.add_argument("--target-size", type=int, help="solve t so the expected selection has this size")
    parser.add_argument("--seed", type=int, default=balance.seed, help="seed of the hash draws")
    parser.add_argument("--t-per-language", metavar="FILE",
                        help="worldwide: a JSON object of language -> t, instead of the t derived from English's "
                             "tail share for those languages")


def add_bigram_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", action="append", required=True,
                        help="pool file or directory whose captions are mined (repeat for several)")
    parser.add_argument("--caption-col", help="caption column (default: caption/TEXT found automatically)")
    thresholds = BigramThresholds()
    parser.add_argument("--min-count", type=int, default=thresholds.min_count,
                        help=f"times a pair must occur (default {thresholds.min_count})")
    parser.add_argument("--min-pmi", type=float, default=thresholds.min_pmi,
                        help=f"least log2 PMI of a pair (default {thresholds.min_pmi:g})")


def add_download_options(parser: argparse.ArgumentParser) -> None:
    defaults = DownloadOptions()
    group = parser.add_argument_group("img2dataset options")
    group.add_argument("--image-size", type=int, default=defaults.image_size)
    group.add_argument("--resize-mode", default=defaults.resize_mode,
                       choices=("border", "keep_ratio", "keep_ratio_largest", "center_crop", "no"))
    group.add_argument("--resize-only-if-bigger", action="store_true")
    group.add_argument("--encode-format", default=defaults.encode_format, choices=("jpg", "png", "webp"))
    group.add_argument("--encode-quality", type=int, default=defaults.encode_quality)
    group.add_argument("--skip-reencode", action="store_true", help="keep the original bytes when not resized")
    group.add_argument("--processes", type=int, help="download processes (default: Spark's parallelism)")
    group.add_argument("--threads", type=int, default=defaults.thread_count, help="threads per process")
    group.add_argument("--timeout", type=int, default=defaults.timeout, help="seconds per request")
    group.add_argument("--retries", type=int, default=defaults.retries, help="immediate retries per url")
    group.add_argument("--samples-per-shard", type=int, default=defaults.number_sample_per_shard)
    group.add_argument("--user-agent-token", help="your crawler's name in the User-Agent, as X-Robots-Tag rules "
                                                  "address crawlers (noai, noimageai, ... are always honoured)")
    group.add_argument("--exclude-domains", metavar="FILE",
                       help="never request urls of these domains or their subdomains (one per line)")
    group.add_argument("--include-domains", metavar="FILE", help="request only urls of these domains")
    group.add_argument("--allow-network", action="append", default=[], metavar="CIDR",
                       help="let downloads reach this address range too (repeatable; by default only public "
                            "addresses: no loopback, private, link-local or metadata addresses)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="download again the urls whose last attempt failed, as new shards")


def add_validate_options(parser: argparse.ArgumentParser) -> None:
    limits = ImageLimits()
    group = parser.add_argument_group("image limits (defaults: DataComp's basic filter)")
    group.add_argument("--min-side", type=int, default=limits.min_side,
                       help=f"shorter side of the source image (default {limits.min_side})")
    group.add_argument("--max-aspect", type=float, default=limits.max_aspect,
                       help=f"longer over shorter side (default {limits.max_aspect:g})")
    group.add_argument("--max-pixels", type=int, default=limits.max_pixels, help="larger images are rejected")
    group.add_argument("--max-phash-distance", type=int, default=MAX_PHASH_DISTANCE,
                       help="images whose perceptual hashes differ in at most this many of 64 bits are "
                            f"near-duplicates (default {MAX_PHASH_DISTANCE}; 0 = identical hash)")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    embed = EmbedConfig()
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=embed.model, help=f"open_clip model name (default: {embed.model})")
    weights = group.add_mutually_exclusive_group()
    weights.add_argument("--pretrained", help="open_clip pretrained tag, where this machine can load it")
    weights.add_argument("--checkpoint", help="a checkpoint of the bundled trainer")
    group.add_argument("--batch-size", type=int, default=embed.batch_size)


def _add_kmeans_options(parser: argparse.ArgumentParser, config) -> None:
    """Where a stage's k-means and vector arithmetic run, and its seed (defaults from its config)."""
    parser.add_argument("--backend", choices=BACKENDS, default=config.backend,
                        help="where the vector arithmetic runs (default auto: faiss-gpu, else CUDA torch, "
                             "else faiss-cpu)")
    parser.add_argument("--seed", type=int, default=config.seed,
                        help="seed of the stage's draws (k-means' sample and start)")


def add_dedup_options(parser: argparse.ArgumentParser) -> None:
    dedup = DedupConfig()
    parser.add_argument("--eps", nargs="+", default=[dedup.eps],  # help: %% is argparse's percent sign
                        help="remove samples more similar than 1 - eps to a kept one; several values in one run, "
                             f"or '{AUTO}' (the default): the largest eps whose false merges of distinct images stay "
                             f"under {MAX_FALSE_MERGE:.0%}%, measured against the duplicates validation found")
    parser.add_argument("--clusters", type=int, default=dedup.clusters,
                        help=f"k-means clusters (default {dedup.clusters})")
    _add_kmeans_options(parser, dedup)


def add_decontaminate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eval", nargs="+", required=True, metavar="IMAGES",
                        help="the evaluation images: folders, tar archives (e.g. CIFAR-10's test tar as it is), "
                             "list files (.txt/.lst, one path per line) or images")
    parser.add_argument("--max-phash-distance", type=int, default=MAX_PHASH_DISTANCE,
                        help=f"a pool image within this many pHash bits of an evaluation image is its copy "
                             f"(default {MAX_PHASH_DISTANCE}, validation's rule)")
    parser.add_argument("--semantic-threshold", type=float, default=SEMANTIC_THRESHOLD,
                        help=f"with embeddings: a pool image above this cosine similarity to an evaluation image "
                             f"is its copy (default {SEMANTIC_THRESHOLD})")


def add_safety_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nsfw-threshold", type=float, default=NSFW_THRESHOLD,
                        help=f"images whose NSFW score is at or above this are rejected (default {NSFW_THRESHOLD})")


def add_score_filter_options(parser: argparse.ArgumentParser) -> None:
    config = ScoreFilterConfig()
    clip = parser.add_argument_group("CLIP score: the cosine of each image's and caption's embeddings (the embed "
                                     "stage's model)")
    clip.add_argument("--clip-score-min", type=float, metavar="S", help="keep samples scoring at least S")
    clip.add_argument("--clip-score-top", type=float, metavar="F",
                      help="keep the fraction F scoring highest (DataComp's best baselines: 0.3)")
    target = parser.add_argument_group("DataComp's image-based filter")
    target.add_argument("--image-based", nargs="+", default=[], metavar="TARGET_IMAGES",
                        help="keep samples whose nearest k-means centroid is nearest to some image of this target "
                             "set (ImageNet's training images in DataComp): folders, tar archives, list files or "
                             "images")
    target.add_argument("--centroids", type=int, default=config.centroids,
                        help=f"k-means clusters of the pool's image embeddings (default {config.centroids})")
    density = parser.add_argument_group("density-based pruning (Abbas et al. 2024)")
    density.add_argument("--density-prune", type=float, metavar="F",
                         help="keep the fraction F of what the filters before kept, pruning dense concept "
                              "clusters most and each cluster's most prototypical samples first")
    density.add_argument("--density-clusters", type=int, default=config.density_clusters,
                         help=f"k-means concept clusters (default {config.density_clusters})")
    density.add_argument("--density-neighbours", type=int, default=config.density_neighbours,
                         help=f"nearest centroids a cluster's distance to the others averages over "
                              f"(default {config.density_neighbours})")
    density.add_argument("--temperature", type=float, default=config.temperature,
                         help=f"of the softmax sharing the kept samples among clusters by their complexity "
                              f"(default {config.temperature:g}; lower: more to complex clusters)")
    _add_kmeans_options(parser, config)


def add_rebalance_options(parser: argparse.ArgumentParser) -> None:
    add_balance_options(parser)
    parser.add_argument("--eps", type=float,
                        help="the SemDeDup eps whose survivors are balanced, when the run has a dedup stage "
                             "(default: its only or smallest eps)")


def add_demo_options(parser: argparse.ArgumentParser) -> None:
    add_metadata_options(parser)
    parser.add_argument("--t", type=float, default=40, help="per-entry cap of both balances (default 40)")


def add_experiment_data_options(parser: argparse.ArgumentParser) -> None:
    design = LongTailDesign()
    add_metadata_options(parser)
    parser.add_argument("--photos", default=str(CIFAR10_TRAIN),
                        help="labelled photos: a tar with <class>/<file> members or a folder of class folders "
                             "(default: CIFAR-10's training images in ../shared/data)")
    parser.add_argument("--classes", default=str(REPO / "data" / "cifar10_classes.txt"), help="one class per line")
    parser.add_argument("--eval", nargs="*", default=[str(CIFAR10_TEST)], metavar="IMAGES",
                        help="evaluation images the pool is decontaminated against (default: CIFAR-10's "
                             "test images in ../shared/data; none: --eval with no value)")
    parser.add_argument("--eps", type=float, nargs="+", default=list(STUDY_EPS),
                        help=f"SemDeDup thresholds the study chooses from (default {' '.join(map(str, STUDY_EPS))})")
    held_out = HeldOut()
    parser.add_argument("--validation-per-class", type=int, default=held_out.validation,
                        help=f"photos per class held out as the validation split (default {held_out.validation})")
    parser.add_argument("--reference-per-class", type=int, default=held_out.reference,
                        help=f"photos per class of the class-balanced reference set (default {held_out.reference})")
    group = parser.add_argument_group("the long-tailed pool")
    group.add_argument("--head-rows", type=int, default=design.head_rows, help="rows of the most frequent class")
    group.add_argument("--imbalance", type=float, default=design.imbalance,
                       help="rows of the most frequent class over those of the least frequent")
    group.add_argument("--copy-share", type=float, default=design.head_copy_share,
                       help="share of copies in the head class (falls linearly to none in the tail)")
    group.add_argument("--no-class-share", type=float, default=design.no_class_share,
                       help="share of captions that name no class")
    group.add_argument("--pool-seed", type=int, default=design.seed)


def add_crawl_options(parser: argparse.ArgumentParser) -> None:
    crawl, extract = CrawlConfig(), ExtractConfig()
    parser.add_argument("--input", nargs="+", required=True, metavar="PATH",
                        help="WAT (*.warc.wat.gz) or WARC (*.warc.gz) files, folders of them, or a Common Crawl "
                             "paths listing (wat.paths.gz) with --prefix")
    parser.add_argument("--prefix", help="what a paths listing's lines are relative to (a folder, s3a://..., "
                                         "hdfs://...)")
    parser.add_argument("--out", required=True, help="the pool folder to write (Parquet that curate_text reads)")
    parser.add_argument("--format", choices=FORMATS, default=extract.format,
                        help="records to read pages from: WAT metadata, WARC HTML responses, or both (auto)")
    parser.add_argument("--languages", type=_codes, default=crawl.languages, metavar="CODES",
                        help="keep captions in these languages only, e.g. en,de (default: all)")
    parser.add_argument("--titles", action="store_true", help="keep each <img>'s title attribute too")
    parser.add_argument("--no-language-id", action="store_true",
                        help="skip language identification (language columns null; not with --languages)")
    parser.add_argument("--min-words", type=int, default=crawl.min_words,
                        help="reject captions with fewer words (DataComp's text filter; default off)")
    parser.add_argument("--min-chars", type=int, default=crawl.min_chars,
                        help="reject captions with fewer characters (default off)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="reread only the files the last run of this --out could not read")
    add_engine_options(parser)


def _codes(value: str) -> tuple[str, ...]:
    return tuple(code.strip().lower() for code in value.split(",") if code.strip())


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "--run", dest="out", required=True, help="run directory of the stages")
    add_engine_options(parser)


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", help="Spark master (default: from spark-submit, else local[*])")
    parser.add_argument("--force", action="store_true", help="rerun stages even if their output is current")


def add_shard_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory with download, validate and rebalance")
    parser.add_argument("--out", required=True, help="folder of the webdataset shards")
    parser.add_argument("--samples-per-shard", type=int, default=SAMPLES_PER_SHARD)
    add_engine_options(parser)


def add_export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory whose shards are exported")
    parser.add_argument("--shards", help="the shards' folder, where jobs/write_shards.py --out put them "
                                         "(default: DIR/shards)")
    parser.add_argument("--out", required=True, metavar="FILE.npy", help="the subset file to write")


def job_main(description: str, option_groups: list[Callable[[argparse.ArgumentParser], None]],
             command: Callable[[argparse.Namespace], None], run_options=add_run_options) -> None:
    """A job's whole entry point: its option groups plus the run options, then the command."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for add_options in option_groups:
        add_options(parser)
    if run_options is not None:
        run_options(parser)
    args = parser.parse_args()
    run_job(lambda: command(args))
