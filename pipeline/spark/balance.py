"""Spark binding of balancing: solve t if asked, draw keep decisions, attach url and caption."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.balancing import entry_probabilities, keep_mask, keep_probabilities, solve_t_with
from pipeline.counting import counts_table
from pipeline.rundir import MANIFEST, StageResult, read_manifest, run_stage, staged_dir, write_json_atomic
from pipeline.spark.count import COUNTS_FILE, entry_counts
from pipeline.spark.outputs import ddl, reason_counts, work_dir, write_rows_and_rejects
from pipeline.spark.task_writes import materialize_from_tasks

STAGE = "selection"
SELECTION_COLUMNS = ["uid", "url", "caption", "entry_ids", "keep_prob"]
_DECIDED = pa.schema([("uid", pa.string()), ("entry_ids", pa.list_(pa.int32())), ("keep_prob", pa.float64()),
                      ("reason", pa.string()), ("detail", pa.string())])
_EXPECTED = pa.schema([("expected", pa.float64())])


@dataclass(frozen=True)
class BalanceConfig:
    """Either t (MetaCLIP: 20k for 400M from 1.6B) or a target size to solve t for; a seed for the draws."""

    t: float | None = 20000.0
    target_size: int | None = None
    seed: int = 0


def _decide(probs_broadcast, seed: int):
    def run(batches):
        probs = probs_broadcast.value
        for batch in batches:
            uids = batch.column("uid").to_pylist()
            ids = batch.column("entry_ids")
            kept = keep_mask(uids, ids, probs, seed)
            reason = pa.array(np.where(kept, None, "balanced_out").tolist(), pa.string())
            detail = pa.array(np.where(kept, None, "not drawn for any matched entry").tolist(), pa.string())
            yield pa.RecordBatch.from_arrays(
                [batch.column("uid"), ids, pa.array(keep_probabilities(ids, probs)), reason, detail],
                schema=_DECIDED)
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


def solve_t(spark: SparkSession, matches: DataFrame, counts: np.ndarray, config: BalanceConfig) -> float:
    """The configured t, or the t whose expected selection size is the configured target size."""
    if config.target_size is not None:
        return solve_t_distributed(spark, matches, counts, config.target_size)
    return config.t


@dataclass
class BalanceOutcome:
    selected: int
    rejected: dict[str, int]
    expected: float
    selected_counts: np.ndarray  # kept samples per entry


def balance_into(spark: SparkSession, matches: DataFrame, texts: DataFrame, probs: np.ndarray, seed: int,
                 out_dir: Path) -> BalanceOutcome:
    """Draw keep decisions for matches (uid, entry_ids) and write the kept ones with their url and caption
    to out_dir (selection columns), the others to out_dir/_rejects."""
    probs_broadcast = spark.sparkContext.broadcast(probs)
    scratch = work_dir(out_dir, "decided")
    try:
        decided = materialize_from_tasks(matches.select("uid", "entry_ids"), _decide(probs_broadcast, seed),
                                         _DECIDED, scratch)
        selected_rows, rejected = reason_counts(decided)
        kept = decided.filter("reason IS NULL")
        # A hash join built on the narrow side: measured 1.5x faster than sort-merge on 1M rows.
        with_text = kept.hint("shuffle_hash").join(texts, "uid").select(*SELECTION_COLUMNS)
        write_rows_and_rejects(with_text, decided.filter("reason IS NOT NULL"), out_dir)
        written = spark.read.parquet(str(out_dir)).count()
        if written != selected_rows:
            raise RuntimeError(f"{out_dir}: {selected_rows - written} selected uids have no url and caption")
        return BalanceOutcome(selected_rows, rejected, float(decided.agg(F.sum("keep_prob")).first()[0] or 0.0),
                              entry_counts(kept, len(probs)))
    finally:
        probs_broadcast.unpersist()
        shutil.rmtree(scratch, ignore_errors=True)


def _rewrite_entry_counts(run_dir: Path, entries: list[str], counts: np.ndarray, probs: np.ndarray,
                          selected: np.ndarray, balance: dict) -> None:
    """entry_counts gains the after-balancing columns; its own fingerprint (the count stage's) stays."""
    manifest = read_manifest(run_dir / "entry_counts")
    with staged_dir(run_dir, "entry_counts") as temporary:
        table = counts_table(entries, counts, p=probs, selected=selected.astype(np.int64))
        pq.write_table(table, temporary / COUNTS_FILE)
        write_json_atomic(temporary / MANIFEST, {**manifest, "balance": balance})


def run_balance(spark: SparkSession, run_dir: Path, entries: list[str], config: BalanceConfig,
                force: bool = False) -> dict:
    run_dir = Path(run_dir)
    counts_manifest = read_manifest(run_dir / "entry_counts")
    matches_manifest = read_manifest(run_dir / "matches")
    ingest_manifest = read_manifest(run_dir / "ingest")
    if None in (counts_manifest, matches_manifest, ingest_manifest):
        raise FileNotFoundError(f"{run_dir}: run ingest, match and count first")
    inputs = {name: manifest["fingerprint"] for name, manifest in
              (("ingest", ingest_manifest), ("matches", matches_manifest), ("entry_counts", counts_manifest))}

    def body(out_dir: Path) -> StageResult:
        counts = pq.read_table(run_dir / "entry_counts" / COUNTS_FILE, columns=["count"]).column("count")
        counts = counts.to_numpy()
        matches = spark.read.parquet(str(run_dir / "matches"))
        texts = spark.read.parquet(str(run_dir / "ingest")).select("uid", "url", "caption")
        t = solve_t(spark, matches, counts, config)
        outcome = balance_into(spark, matches, texts, entry_probabilities(counts, t), config.seed, out_dir)
        summary = {"t": t, "expected_size": outcome.expected, "selected": outcome.selected}
        _rewrite_entry_counts(run_dir, entries, counts, entry_probabilities(counts, t), outcome.selected_counts,
                              summary)
        return StageResult(rows_in=matches_manifest["rows_out"], rows_out=outcome.selected,
                           rejected=outcome.rejected, extra=summary)

    return run_stage(run_dir, STAGE, asdict(config), inputs, body, force=force)
