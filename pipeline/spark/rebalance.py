"""The final MetaCLIP balance over the samples that survived download and validation.

Counts are recomputed over the survivors only, so an entry that lost images to failed downloads or
duplicates gets a higher keep probability; the draws follow the same (seed, uid, entry_id) rule.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipeline.text.balancing import entry_probabilities
from pipeline.text.counting import counts_table
from pipeline.run.directory import StageResult, read_manifest, run_stage
from pipeline.spark.balance import BalanceConfig, balance_into, solve_t
from pipeline.spark.count import COUNTS_FILE, entry_counts

STAGE = "rebalance"
ENTRY_COUNTS = "_entry_counts.parquet"  # `_`: Spark and pyarrow readers of the stage skip it


def run_rebalance(spark: SparkSession, run_dir: Path, config: BalanceConfig, force: bool = False) -> dict:
    run_dir = Path(run_dir)
    manifests = {name: read_manifest(run_dir / name) for name in ("selection", "validate", "entry_counts")}
    if None in manifests.values():
        raise FileNotFoundError(f"{run_dir}: run text curation, download and validate first")
    entries = pq.read_table(run_dir / "entry_counts" / COUNTS_FILE, columns=["entry"]).column("entry").to_pylist()

    def body(out_dir: Path) -> StageResult:
        kept_uids = spark.read.parquet(str(run_dir / "validate")).filter(F.col("status") == "kept").select("uid")
        survivors = (spark.read.parquet(str(run_dir / "selection")).join(kept_uids, "uid", "left_semi")
                     .select("uid", "url", "caption", "entry_ids"))
        counts = entry_counts(survivors, len(entries))
        t = solve_t(spark, lambda: survivors, counts, config)
        probs = entry_probabilities(counts, t)
        outcome = balance_into(spark, survivors, probs, config.seed, out_dir)
        pq.write_table(counts_table(entries, counts, p=probs, selected=outcome.selected_counts), out_dir / ENTRY_COUNTS)
        summary = {"t": t, "expected_size": outcome.expected, "selected": outcome.selected,
                   "entries_matched": int((counts > 0).sum()), "entries_selected": int((outcome.selected_counts > 0).sum())}
        return StageResult(rows_in=manifests["validate"]["rows_out"], rows_out=outcome.selected,
                           rejected=outcome.rejected, extra=summary)

    inputs = {name: manifest["fingerprint"] for name, manifest in manifests.items() if name != "entry_counts"}
    return run_stage(run_dir, STAGE, asdict(config), inputs, body, force=force)
