"""What each spark-submit job does once its arguments are parsed: build its configs (configs.py), run its
stage on the job's Spark session, print the summary."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from pipeline.cli import configs
from pipeline.clip.evaluate import read_classes
from pipeline.crawl.files import crawl_files
from pipeline.crawl.output import format_extraction
from pipeline.experiments.demo import demo_files, write_demo_eval_set, write_demo_pool
from pipeline.experiments.image_server import SERVED_FROM, ImageServer
from pipeline.experiments.longtail import HeldOut
from pipeline.image.check import ImageLimits
from pipeline.image.contamination import DecontaminationConfig
from pipeline.image.download import DownloadOptions, run_download
from pipeline.run.export import export_uids
from pipeline.run.stages import IMAGES_RUN, STAGES, TEXT_RUN
from pipeline.run.summary import format_summary
from pipeline.semantic.semdedup import DedupConfig
from pipeline.spark.balance import run_balance
from pipeline.spark.bigrams import run_mine_bigrams
from pipeline.spark.count import run_count
from pipeline.spark.crawl import run_extract_crawl
from pipeline.spark.curate import ImageCurationConfig, TextCurationConfig, curate_images, curate_text
from pipeline.spark.decontaminate import run_decontaminate
from pipeline.spark.dedup import run_dedup
from pipeline.spark.embed import run_embed
from pipeline.spark.experiment import ExperimentData, prepare_experiment
from pipeline.spark.ingest import run_ingest
from pipeline.spark.match import run_match
from pipeline.spark.rebalance import run_rebalance
from pipeline.spark.safety import run_safety
from pipeline.spark.score_filter import run_score_filter
from pipeline.spark.session import get_spark
from pipeline.spark.shards import run_write_shards
from pipeline.spark.validate import run_validate
from pipeline.text.balancing import BalanceConfig
from pipeline.text.vocabulary import load_vocabulary


def _print_summary(run_dir: str, stage: str, manifest: dict) -> None:
    print(format_summary(Path(run_dir), {STAGES[stage].folder: manifest}))


def extract_crawl_command(args: argparse.Namespace) -> int:
    """The pool of the crawl files' image links; files that could not be read are named and make the exit
    status 1, after the others are done."""
    files = crawl_files(args.input, args.prefix)
    manifest = run_extract_crawl(get_spark("metacurate-extract-crawl", args.master), files, Path(args.out),
                                 configs.crawl_config(args), retry_failed=args.retry_failed, force=args.force)
    print(format_extraction(Path(args.out), manifest))
    for failed in manifest["failed_files"]:
        print(f"error: {failed['error']}", file=sys.stderr)
    if manifest["failed_files"]:
        print(f"{len(manifest['failed_files'])} file(s) could not be read; after fixing them, rerun with "
              f"--retry-failed to read only those", file=sys.stderr)
        return 1
    return 0


def curate_text_command(args: argparse.Namespace) -> None:
    config = configs.text_curation_config(args)
    manifests = curate_text(get_spark("metacurate-curate-text", args.master), config)
    print(format_summary(Path(args.out), manifests))


def ingest_command(args: argparse.Namespace) -> None:
    spark = get_spark("metacurate-ingest", args.master)
    manifest = run_ingest(spark, args.pool, Path(args.out), configs.ingest_config(args), args.url_col,
                          args.caption_col, args.uid_col, force=args.force)
    _print_summary(args.out, "ingest", manifest)


def match_command(args: argparse.Namespace) -> None:
    vocabulary = load_vocabulary(args.metadata, args.worldwide)
    spark = get_spark("metacurate-match", args.master)
    manifest = run_match(spark, Path(args.out), vocabulary, args.mode, force=args.force)
    _print_summary(args.out, "match", manifest)


def count_command(args: argparse.Namespace) -> None:
    manifest = run_count(Path(args.out), load_vocabulary(args.metadata, args.worldwide), force=args.force)
    _print_summary(args.out, "count", manifest)


def balance_command(args: argparse.Namespace) -> None:
    spark = get_spark("metacurate-balance", args.master)
    manifest = run_balance(spark, Path(args.out), configs.balance_config(args), force=args.force)
    _print_summary(args.out, "balance", manifest)


def mine_bigrams_command(args: argparse.Namespace) -> None:
    thresholds = configs.bigram_thresholds(args)
    spark = get_spark("metacurate-mine-bigrams", args.master)
    manifest = run_mine_bigrams(spark, args.corpus, Path(args.out), thresholds, args.caption_col, force=args.force)
    print(f"{args.out}: {manifest['bigrams_mined']:,} bigrams from {manifest['rows_out']:,} distinct captions "
          f"({manifest['rows_in']:,} rows read; rejected: {manifest['rejected']})")


def download_command(args: argparse.Namespace) -> None:
    spark = get_spark("metacurate-download", args.master)
    local = spark.sparkContext.master.startswith("local")
    options = configs.download_options(args, spark.sparkContext.defaultParallelism, local)
    manifest = run_download(Path(args.out), options, retry_failed=args.retry_failed, force=args.force)
    _print_summary(args.out, "download", manifest)


def validate_command(args: argparse.Namespace) -> None:
    limits = configs.image_limits(args)
    spark = get_spark("metacurate-validate", args.master)
    manifest = run_validate(spark, Path(args.out), limits, args.max_phash_distance, force=args.force)
    _print_summary(args.out, "validate", manifest)


def decontaminate_command(args: argparse.Namespace) -> None:
    config = configs.decontamination_config(args)
    spark = get_spark("metacurate-decontaminate", args.master)
    manifest = run_decontaminate(spark, Path(args.out), config, force=args.force)
    _print_summary(args.out, "decontaminate", manifest)
    semantic = manifest["semantic"]
    print(f"  against {manifest['eval_images']:,} evaluation images; removed by match: "
          f"{manifest['removed_by_match'] or 'none'}"
          + ("" if semantic is None else f"; {semantic.get('says', 'semantic check applied')}"))


def safety_command(args: argparse.Namespace) -> None:
    config = configs.safety_config(args)
    manifest = run_safety(get_spark("metacurate-safety", args.master), Path(args.out), config, force=args.force)
    _print_summary(args.out, "safety", manifest)


def score_filter_command(args: argparse.Namespace) -> None:
    config = configs.score_filter_config(args)
    spark = get_spark("metacurate-score-filter", args.master)
    manifest = run_score_filter(spark, Path(args.out), config, force=args.force)
    _print_summary(args.out, "score_filter", manifest)
    if manifest["threshold"] is not None:
        print(f"  CLIP score threshold {manifest['threshold']:.4f}")
    for name, figures in (("image-based", manifest.get("image_based")), ("density", manifest.get("density"))):
        if figures:
            print(f"  {name}: {', '.join(f'{key} {value:,}' for key, value in figures.items())}")


def rebalance_command(args: argparse.Namespace) -> None:
    spark = get_spark("metacurate-rebalance", args.master)
    manifest = run_rebalance(spark, Path(args.out), configs.balance_config(args), args.eps, force=args.force)
    _print_summary(args.out, "rebalance", manifest)


def write_shards_command(args: argparse.Namespace) -> None:
    per_shard = configs.samples_per_shard(args)
    spark = get_spark("metacurate-write-shards", args.master)
    manifest = run_write_shards(spark, Path(args.run), Path(args.out), per_shard, force=args.force)
    state = "skipped (current)" if manifest["skipped"] else f"{manifest['wall_seconds']:.1f}s"
    print(f"{Path(args.out).resolve()}: {manifest['rows_out']:,} samples in {manifest['shards']} shards [{state}]")


def export_uids_command(args: argparse.Namespace) -> None:
    shards = Path(args.shards) if args.shards else STAGES["shards"].path(args.run)
    count = export_uids(shards / STAGES["shards"].files["index"], Path(args.out))
    print(f"{Path(args.out).resolve()}: {count:,} uids of {shards.resolve()} (DataComp subset, dtype u8,u8)")


def demo_images_command(args: argparse.Namespace) -> None:
    """Text curation, download, validation, embedding, SemDeDup (--eps auto), decontamination, rebalance and
    shards of the offline demo pool, in one session."""
    run = Path(args.out)
    spark = get_spark("metacurate-demo-images", args.master)
    balance = BalanceConfig(t=args.t, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        files = demo_files(Path(folder))
        evaluation = write_demo_eval_set(files, run / "eval_images")
        images = ImageCurationConfig(
            download=DownloadOptions(processes_count=spark.sparkContext.defaultParallelism, thread_count=16,
                                     timeout=5, allow_network=SERVED_FROM),
            limits=ImageLimits(min_side=0, max_aspect=3), dedup=DedupConfig(clusters=10),
            decontaminate=DecontaminationConfig(eval=(str(evaluation),)), samples_per_shard=100)
        with ImageServer(files) as server:
            write_demo_pool(server, list(server.files), run / "demo_pool.jsonl")
            manifests = curate_text(spark, TextCurationConfig(pool=str(run / "demo_pool.jsonl"),
                                                              metadata=args.metadata, out=str(run), balance=balance,
                                                              force=args.force))
            manifests.update(curate_images(spark, run, balance, images, force=args.force))
    shards = manifests.pop(STAGES["shards"].folder)
    print(format_summary(run, manifests))
    print(f"  shards: {STAGES['shards'].path(run).resolve()} ({shards['rows_out']} samples in "
          f"{shards['shards']} shards)")


def experiment_data_command(args: argparse.Namespace) -> None:
    """The study's pool, its captions through the text stages (DIR/text) and all of it downloaded and through
    the image stages (DIR/images)."""
    data = ExperimentData(design=configs.long_tail_design(args), labelled=Path(args.photos),
                          classes=tuple(read_classes(args.classes)), metadata=args.metadata, eps=tuple(args.eps),
                          held_out=HeldOut(args.validation_per_class, args.reference_per_class),
                          evaluation=tuple(args.eval), force=args.force)
    run = Path(args.out)
    manifests = prepare_experiment(get_spark("metacurate-experiment-data", args.master), run, data)
    pool = manifests[STAGES["pool"].folder]
    print(f"pool: {pool['rows_out']:,} rows; by class {pool['class_rows']}; {pool['kinds']}; held out: "
          f"{pool['validation_images']:,} validation images, {pool['reference_samples']:,} reference samples")
    print(format_summary(run / TEXT_RUN, manifests[TEXT_RUN]))
    print(format_summary(run / IMAGES_RUN, manifests[IMAGES_RUN]))
    print(f"next: python -m pipeline.experiment --run {run} --name NAME")


def embed_command(args: argparse.Namespace) -> None:
    config = configs.embed_config(args)
    manifest = run_embed(get_spark("metacurate-embed", args.master), Path(args.out), config, force=args.force)
    _print_summary(args.out, "embed", manifest)


def dedup_command(args: argparse.Namespace) -> None:
    config = configs.dedup_config(args)
    manifest = run_dedup(get_spark("metacurate-dedup", args.master), Path(args.out), config, force=args.force)
    _print_summary(args.out, "dedup", manifest)
    for eps, kept in manifest["kept_per_eps"].items():
        print(f"  eps {eps}: {kept:,} of {manifest['rows_in']:,} kept")
