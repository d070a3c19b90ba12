"""The final MetaCLIP balance over the samples that survived download, validation and, when the run has
those stages, SemDeDup at one eps and the filters (decontamination, safety, score filters; MetaCLIP balances
last).

Counts are recomputed over the survivors only, so an entry that lost images to failed downloads or
duplicates gets a higher keep probability; the draws follow the same (seed, uid, entry_id) rule.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from functools import reduce
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.errors import UserInputError
from pipeline.run.directory import REJECTS, StageResult, run_stage
from pipeline.run.stages import STAGES, fingerprints, present_upstream, require_upstream, stale_inputs
from pipeline.semantic.semdedup import chosen_eps
from pipeline.spark.balance import balance_into, keep_probabilities_for
from pipeline.spark.count import entry_counts
from pipeline.spark.dedup import semantic_duplicates
from pipeline.spark.outputs import materialize, work_dir
from pipeline.text.balancing import BalanceConfig
from pipeline.text.counting import counts_table, entry_languages

REBALANCE, BALANCE, COUNT, VALIDATE, DEDUP, SCORE_FILTER = (
    STAGES[name] for name in ("rebalance", "balance", "count", "validate", "dedup", "score_filter"))
# The stages whose rejects rebalance leaves out
FILTERS = tuple(STAGES[name] for name in ("decontaminate", "safety", "score_filter"))


def _check_score_filter(run_dir: Path, present: dict[str, dict], applied: float | None) -> None:
    """The score filter decided over SemDeDup's survivors at one eps (or before any dedup): balancing the survivors
    of another would let samples it never scored through."""
    manifest = present.get(SCORE_FILTER.folder)
    if manifest is None:
        return
    changed = stale_inputs(run_dir, SCORE_FILTER.name)
    if changed:
        raise UserInputError(f"{run_dir}: {' and '.join(changed)} changed after the score filter ran; rerun "
                             f"{SCORE_FILTER.job} first")
    scored_at = manifest.get("dedup_eps")
    if scored_at != applied:
        where = "before any dedup stage" if scored_at is None else f"over SemDeDup's survivors at eps {scored_at:g}"
        instead = "without the dedup stage" if applied is None else f"at eps {applied:g}"
        advice = f"rebalance with --eps {scored_at:g} or rerun" if scored_at is not None and applied is not None \
            else "rerun"
        raise UserInputError(f"{run_dir}: the score filter ran {where}, not {instead}; {advice} {SCORE_FILTER.job}")


def run_rebalance(spark: SparkSession, run_dir: Path, config: BalanceConfig, eps: float | None = None,
                  force: bool = False) -> dict:
    """Balance again over the samples validation kept and, when the run has a dedup stage, that SemDeDup kept
    at `eps` (default: the dedup stage's only or smallest eps)."""
    run_dir = Path(run_dir)
    manifests = require_upstream(run_dir, REBALANCE.name)
    present = present_upstream(run_dir, REBALANCE.name)
    dedup = present.get(DEDUP.folder)
    filters = [stage for stage in FILTERS if stage.folder in present]
    if dedup is None and eps is not None:
        raise UserInputError(f"{run_dir}: --eps needs a dedup stage; run {DEDUP.job} first")
    applied = None if dedup is None else chosen_eps(dedup["eps"], eps)
    _check_score_filter(run_dir, present, applied)
    entry_table = pq.read_table(COUNT.file(run_dir, "counts"))
    entries = entry_table.column("entry").to_pylist()
    languages = entry_languages(entry_table)

    def body(out_dir: Path) -> StageResult:
        try:
            return balance_survivors(out_dir)
        finally:
            shutil.rmtree(work_dir(out_dir, "removed"), ignore_errors=True)

    def balance_survivors(out_dir: Path) -> StageResult:
        kept_uids = spark.read.parquet(str(VALIDATE.path(run_dir))).filter(F.col("status") == "kept").select("uid")
        taken_out = []
        if applied is not None:
            taken_out.append(semantic_duplicates(spark, run_dir, applied))
        taken_out += [spark.read.parquet(str(stage.path(run_dir) / REJECTS)).select("uid") for stage in filters]
        if taken_out:
            gone = materialize(reduce(DataFrame.union, taken_out).distinct().join(kept_uids, "uid", "left_semi"),
                               work_dir(out_dir, "removed"))
            kept_uids = kept_uids.join(gone, "uid", "left_anti")
            gone_count = gone.count()
        survivors = (spark.read.parquet(str(BALANCE.path(run_dir))).join(kept_uids, "uid", "left_semi")
                     .select("uid", "url", "caption", "entry_ids"))
        counts = entry_counts(survivors, len(entries))
        probs, summary = keep_probabilities_for(spark, lambda: survivors, counts, languages, config)
        outcome = balance_into(spark, survivors, probs, config.seed, out_dir)
        pq.write_table(counts_table(entries, counts, languages, p=probs, selected=outcome.selected_counts),
                       out_dir / REBALANCE.files["entry_counts"])
        summary.update({"expected_size": outcome.expected, "selected": outcome.selected,
                        "entries_matched": int((counts > 0).sum()),
                        "entries_selected": int((outcome.selected_counts > 0).sum()),
                        "dedup": {"applied": applied is not None, "eps": applied},
                        "filters": [stage.name for stage in filters]})
        # What validation kept and neither dedup nor a filter removed (their rejects are counted there)
        return StageResult(rows_in=manifests[VALIDATE.folder]["rows_out"] - (gone_count if taken_out else 0),
                           rows_out=outcome.selected,
                           rejected=dict(outcome.rejected), extra=summary)

    # The counts give only the entries' names here: the selection's identity already holds the vocabulary.
    inputs = fingerprints({folder: manifest for folder, manifest in manifests.items() if folder != COUNT.folder})
    stage_config = asdict(config)
    if dedup is not None:  # a run without dedup keeps the identity it always had
        inputs[DEDUP.folder], stage_config["eps"] = dedup["fingerprint"], applied
    inputs.update({stage.folder: present[stage.folder]["fingerprint"] for stage in filters})
    return run_stage(run_dir, REBALANCE.folder, stage_config, inputs, body, force=force)
