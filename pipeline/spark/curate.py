"""Text curation on Spark: ingest -> match -> count -> balance into one run directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline.ingest import IngestConfig
from pipeline.metadata import entries_fingerprint, load_entries
from pipeline.spark.balance import BalanceConfig, run_balance
from pipeline.spark.count import run_count
from pipeline.spark.ingest import run_ingest
from pipeline.spark.match import run_match

TEXT_STAGES = ("ingest", "matches", "entry_counts", "selection")


@dataclass(frozen=True)
class TextCurationConfig:
    """Everything a text curation run depends on."""

    pool: str
    metadata: str
    out: str
    mode: str = "default"
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    url_col: str | None = None
    caption_col: str | None = None
    uid_col: str | None = None
    force: bool = False


def curate_text(spark: SparkSession, config: TextCurationConfig) -> dict[str, dict]:
    """Run the four text stages; each is skipped when its output is already current."""
    run_dir = Path(config.out)
    entries = load_entries(config.metadata)
    vocab_key = entries_fingerprint(entries)
    manifests = {"ingest": run_ingest(spark, config.pool, run_dir, config.ingest, config.url_col,
                                      config.caption_col, config.uid_col, force=config.force)}
    manifests["matches"] = run_match(spark, run_dir, entries, vocab_key, config.mode, force=config.force)
    manifests["entry_counts"] = run_count(spark, run_dir, entries, force=config.force)
    manifests["selection"] = run_balance(spark, run_dir, entries, config.balance, force=config.force)
    return manifests
