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

from pipeline.run.directory import StageResult, run_stage
from pipeline.run.stages import STAGES, fingerprints, require_upstream
from pipeline.spark.balance import balance_into, solve_t
from pipeline.spark.count import entry_counts
from pipeline.text.balancing import BalanceConfig, entry_probabilities
from pipeline.text.counting import counts_table

REBALANCE, COUNT, VALIDATE = STAGES["rebalance"], STAGES["count"], STAGES["validate"]  # `_` files: rows readers skip


def run_rebalance(spark: SparkSession, run_dir: Path, config: BalanceConfig, force: bool = False) -> dict:
    run_dir = Path(run_dir)
    manifests = require_upstream(run_dir, REBALANCE.name)
    entries = pq.read_table(COUNT.file(run_dir, "counts"), columns=["entry"]).column("entry").to_pylist()

    def body(out_dir: Path) -> StageResult:
        kept_uids = spark.read.parquet(str(VALIDATE.path(run_dir))).filter(F.col("status") == "kept").select("uid")
        survivors = (spark.read.parquet(str(STAGES["balance"].path(run_dir))).join(kept_uids, "uid", "left_semi")
                     .select("uid", "url", "caption", "entry_ids"))
        counts = entry_counts(survivors, len(entries))
        t = solve_t(spark, lambda: survivors, counts, config)
        probs = entry_probabilities(counts, t)
        outcome = balance_into(spark, survivors, probs, config.seed, out_dir)
        pq.write_table(counts_table(entries, counts, p=probs, selected=outcome.selected_counts),
                       out_dir / REBALANCE.files["entry_counts"])
        summary = {"t": t, "expected_size": outcome.expected, "selected": outcome.selected,
                   "entries_matched": int((counts > 0).sum()), "entries_selected": int((outcome.selected_counts > 0).sum())}
        return StageResult(rows_in=manifests[VALIDATE.folder]["rows_out"], rows_out=outcome.selected,
                           rejected=outcome.rejected, extra=summary)

    # The counts give only the entries' names here: the selection's identity already holds the vocabulary.
    inputs = fingerprints({folder: manifest for folder, manifest in manifests.items() if folder != COUNT.folder})
    return run_stage(run_dir, REBALANCE.folder, asdict(config), inputs, body, force=force)
