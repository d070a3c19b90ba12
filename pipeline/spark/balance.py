"""Spark binding of balancing: solve t if asked, then one narrow pass whose tasks draw the keep decisions
and write the selection, its rejects and their own summaries (kept samples per entry, expected size)."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from pipeline.run.directory import (
    MANIFEST,
    REJECT_SCHEMA,
    REJECTS,
    StageResult,
    read_manifest,
    run_stage,
    staged_dir,
    write_json_atomic,
)
from pipeline.run.stages import STAGES, fingerprints, require_upstream
from pipeline.spark.outputs import ddl, work_dir
from pipeline.spark.task_writes import ParquetParts, write_from_tasks
from pipeline.text.balancing import BalanceConfig, entry_probabilities, keep_mask, keep_probabilities, solve_t_with
from pipeline.text.carried import stage_columns, with_carried
from pipeline.text.counting import (
    COUNTS_SCHEMA,
    count_entries,
    counts_table,
    entry_languages,
    sparse_counts,
    sum_sparse_counts,
)
from pipeline.text.worldwide import EntryLanguages, entry_thresholds, language_thresholds

BALANCE, COUNT, MATCH = STAGES["balance"], STAGES["count"], STAGES["match"]
SELECTION_SCHEMA = pa.schema([("uid", pa.string()), ("url", pa.string()), ("caption", pa.string()),
                              ("entry_ids", pa.list_(pa.int32())), ("keep_prob", pa.float64())])
_EXPECTED = pa.schema([("expected", pa.float64())])


def _decide(probs_broadcast, seed: int):
    """Batches of (uid, url, caption, entry_ids) -> kept rows with their keep probability and dropped rows
    as rejects; last, the task's kept samples per entry and its expected size, so that no further pass
    over the data is needed for them."""
    def run(batches):
        probs = probs_broadcast.value
        kept_per_entry = np.zeros(len(probs), dtype=np.int64)
        expected = 0.0
        for batch in batches:
            ids = batch.column("entry_ids")
            kept = keep_mask(batch.column("uid"), ids, probs, seed)
            keep_prob = keep_probabilities(ids, probs)
            expected += float(keep_prob.sum())
            rows = pa.Table.from_batches([batch]).append_column("keep_prob", pa.array(keep_prob)).filter(kept)
            kept_per_entry += count_entries(rows.column("entry_ids"), len(probs))
            dropped = batch.column("uid").filter(pa.array(~kept))
            yield {"rows": rows,
                   "rejects": pa.table({"uid": dropped, "reason": pa.repeat("balanced_out", len(dropped)),
                                        "detail": pa.repeat("not drawn for any matched entry", len(dropped))})}
        yield {"kept_counts": sparse_counts(kept_per_entry),
               "expected": pa.RecordBatch.from_arrays([pa.array([expected])], schema=_EXPECTED)}
    return run


def _expected_partials(probs_broadcast):
    def run(batches):
        probs = probs_broadcast.value
        total = sum(float(keep_probabilities(batch.column("entry_ids"), probs).sum()) for batch in batches)
        yield pa.RecordBatch.from_arrays([pa.array([total])], schema=_EXPECTED)
    return run


def expected_total(spark: SparkSession, matches: DataFrame, probs: np.ndarray) -> float:
    """Exact expected selection size: the sum of keep probabilities over the pool."""
    probs_broadcast = spark.sparkContext.broadcast(probs)
    try:
        rows = matches.select("entry_ids").mapInArrow(_expected_partials(probs_broadcast), ddl(_EXPECTED)).collect()
        return float(sum(row[0] for row in rows))
    finally:
        probs_broadcast.unpersist()


def solve_t_distributed(spark: SparkSession, matches: DataFrame, probabilities: Callable[[float], np.ndarray],
                        max_t: float, target_size: int) -> float:
    """solve_t over a pool that lives in Spark: each bisection step is one pass over the cached matches."""
    ids = matches.select("entry_ids").persist(StorageLevel.MEMORY_AND_DISK)
    try:
        return solve_t_with(lambda t: expected_total(spark, ids, probabilities(t)), target_size, max_t)
    finally:
        ids.unpersist()


def keep_probabilities_for(spark: SparkSession, matches: Callable[[], DataFrame], counts: np.ndarray,
                           languages: np.ndarray | None, config: BalanceConfig) -> tuple[np.ndarray, dict]:
    """Each entry's keep probability, and the summary of how it was set: t (the configured one, or the one whose
    expected selection has the target size) and, worldwide, every language's t by MetaCLIP 2's rule.

    `matches` makes the matched samples' DataFrame; it is called only when t must be solved, so a given t costs
    no Spark job (not even the listing of the matches).
    """
    given = dict(config.t_per_language)
    coded = None if languages is None else EntryLanguages.of(languages)

    def probabilities(t: float) -> np.ndarray:
        if coded is None:
            return entry_probabilities(counts, t)
        return entry_probabilities(counts, entry_thresholds(coded, language_thresholds(counts, coded, t, given)))

    t = config.t
    if config.target_size is not None:
        t = solve_t_distributed(spark, matches(), probabilities, float(max(counts.max(), 1)), config.target_size)
    summary = {"t": t}
    if coded is not None:
        summary["languages"] = {language: asdict(threshold) for language, threshold in
                                language_thresholds(counts, coded, t, given).items()}
    return probabilities(t), summary


@dataclass
class BalanceOutcome:
    selected: int
    rejected: dict[str, int]
    expected: float
    selected_counts: np.ndarray  # kept samples per entry


def balance_into(spark: SparkSession, samples: DataFrame | ParquetParts, probs: np.ndarray, seed: int,
                 out_dir: Path, schema: pa.Schema = SELECTION_SCHEMA) -> BalanceOutcome:
    """Draw keep decisions for samples (uid, url, caption, entry_ids): the kept ones go to out_dir
    (selection columns), the others to out_dir/_rejects, both written by the tasks that decide."""
    probs_broadcast = spark.sparkContext.broadcast(probs)
    summaries = {name: work_dir(out_dir, name) for name in ("kept_counts", "expected")}
    try:
        counts = write_from_tasks(samples, _decide(probs_broadcast, seed), {
            "rows": (out_dir, schema), "rejects": (out_dir / REJECTS, REJECT_SCHEMA),
            "kept_counts": (summaries["kept_counts"], COUNTS_SCHEMA), "expected": (summaries["expected"], _EXPECTED)})
        selected_counts = sum_sparse_counts(summaries["kept_counts"], len(probs))
        expected = float(pq.read_table(summaries["expected"]).column("expected").to_numpy().sum())
        return BalanceOutcome(counts["rows"][None], dict(counts["rejects"]), expected, selected_counts)
    finally:
        probs_broadcast.unpersist()
        for directory in summaries.values():
            shutil.rmtree(directory, ignore_errors=True)


def _rewrite_entry_counts(run_dir: Path, entries: list[str], counts: np.ndarray, probs: np.ndarray,
                          selected: np.ndarray, languages: np.ndarray | None, balance: dict) -> None:
    """entry_counts gains the after-balancing columns; its own fingerprint (the count stage's) stays."""
    manifest = read_manifest(COUNT.path(run_dir))
    with staged_dir(run_dir, COUNT.folder) as temporary:
        table = counts_table(entries, counts, languages, p=probs, selected=selected.astype(np.int64))
        pq.write_table(table, temporary / COUNT.files["counts"])
        write_json_atomic(temporary / MANIFEST, {**manifest, "balance": balance})


def language_sizes(spark: SparkSession, folder: Path) -> dict[str, int]:
    """Rows per caption language in a stage's output."""
    rows = spark.read.parquet(str(folder)).groupBy("language").count().collect()
    return {str(row["language"]): int(row["count"]) for row in rows}


def run_balance(spark: SparkSession, run_dir: Path, config: BalanceConfig, force: bool = False) -> dict:
    """Worldwide runs (entry_counts has a language column) balance each language with its own t, and the
    summary gives per language its t, its pool (ingested rows) and its curated size."""
    run_dir = Path(run_dir)
    manifests = require_upstream(run_dir, BALANCE.name)

    def body(out_dir: Path) -> StageResult:
        counts_file = pq.read_table(COUNT.file(run_dir, "counts"))
        counts, entries = counts_file.column("count").to_numpy(), counts_file.column("entry").to_pylist()
        languages = entry_languages(counts_file)
        schema = with_carried(SELECTION_SCHEMA, stage_columns(MATCH.path(run_dir)))
        columns = ["uid", "url", "caption", "entry_ids", *schema.names[len(SELECTION_SCHEMA):]]
        probs, summary = keep_probabilities_for(
            spark, lambda: spark.read.parquet(str(MATCH.path(run_dir))).select("entry_ids"), counts,
            languages, config)
        outcome = balance_into(spark, ParquetParts(spark, MATCH.path(run_dir), columns), probs, config.seed, out_dir,
                               schema)
        summary.update(expected_size=outcome.expected, selected=outcome.selected)
        if languages is not None:
            pool, curated = language_sizes(spark, STAGES["ingest"].path(run_dir)), language_sizes(spark, out_dir)
            for language, figures in summary["languages"].items():
                figures.update(pool=pool.get(language, 0), curated=curated.get(language, 0))
        _rewrite_entry_counts(run_dir, entries, counts, probs, outcome.selected_counts, languages, summary)
        return StageResult(rows_in=manifests[MATCH.folder]["rows_out"], rows_out=outcome.selected,
                           rejected=outcome.rejected, extra=summary)

    return run_stage(run_dir, BALANCE.folder, asdict(config), fingerprints(manifests), body, force=force)
