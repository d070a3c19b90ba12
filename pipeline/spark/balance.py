"""Spark binding of balancing: solve t if asked, then one narrow pass whose tasks draw the keep decisions
and write the selection, its rejects and their own summaries (kept samples per entry, expected size)."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
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
from pipeline.text.counting import COUNTS_SCHEMA, count_entries, counts_table, sparse_counts, sum_sparse_counts
from pipeline.text.ingest import with_carried

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
            kept = keep_mask(batch.column("uid").to_pylist(), ids, probs, seed)
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


def solve_t_distributed(spark: SparkSession, matches: DataFrame, counts: np.ndarray, target_size: int) -> float:
    """solve_t over a pool that lives in Spark: each bisection step is one pass over the cached matches."""
    ids = matches.select("entry_ids").persist(StorageLevel.MEMORY_AND_DISK)
    try:
        return solve_t_with(lambda t: expected_total(spark, ids, entry_probabilities(counts, t)),
                            target_size, float(max(counts.max(), 1)))
    finally:
        ids.unpersist()


def solve_t(spark: SparkSession, matches: Callable[[], DataFrame], counts: np.ndarray, config: BalanceConfig) -> float:
    """The configured t, or the t whose expected selection size is the configured target size.

    `matches` makes the matched samples' DataFrame; it is called only when t must be solved, so a
    given t costs no Spark job (not even the listing of the matches).
    """
    if config.target_size is not None:
        return solve_t_distributed(spark, matches(), counts, config.target_size)
    return config.t


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
                          selected: np.ndarray, balance: dict) -> None:
    """entry_counts gains the after-balancing columns; its own fingerprint (the count stage's) stays."""
    manifest = read_manifest(COUNT.path(run_dir))
    with staged_dir(run_dir, COUNT.folder) as temporary:
        table = counts_table(entries, counts, p=probs, selected=selected.astype(np.int64))
        pq.write_table(table, temporary / COUNT.files["counts"])
        write_json_atomic(temporary / MANIFEST, {**manifest, "balance": balance})


def run_balance(spark: SparkSession, run_dir: Path, entries: list[str], config: BalanceConfig,
                force: bool = False) -> dict:
    run_dir = Path(run_dir)
    manifests = require_upstream(run_dir, BALANCE.name)

    def body(out_dir: Path) -> StageResult:
        counts = pq.read_table(COUNT.file(run_dir, "counts"), columns=["count"]).column("count")
        counts = counts.to_numpy()
        schema = with_carried(SELECTION_SCHEMA, ds.dataset(MATCH.path(run_dir), format="parquet").schema.names)
        columns = ["uid", "url", "caption", "entry_ids", *schema.names[len(SELECTION_SCHEMA):]]
        t = solve_t(spark, lambda: spark.read.parquet(str(MATCH.path(run_dir))).select("entry_ids"), counts, config)
        outcome = balance_into(spark, ParquetParts(spark, MATCH.path(run_dir), columns), entry_probabilities(counts, t),
                               config.seed, out_dir, schema)
        summary = {"t": t, "expected_size": outcome.expected, "selected": outcome.selected}
        _rewrite_entry_counts(run_dir, entries, counts, entry_probabilities(counts, t), outcome.selected_counts,
                              summary)
        return StageResult(rows_in=manifests[MATCH.folder]["rows_out"], rows_out=outcome.selected,
                           rejected=outcome.rejected, extra=summary)

    return run_stage(run_dir, BALANCE.folder, asdict(config), fingerprints(manifests), body, force=force)
