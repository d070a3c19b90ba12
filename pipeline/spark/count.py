"""Counting: samples per entry, summed on the driver from partial counts made by the tasks.

The count stage sums the parts the match tasks wrote (no pass over the matches); entry_counts counts
any DataFrame with entry ids (the image side's survivors) in one pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from pyspark.sql import DataFrame

from pipeline.run.directory import StageResult, run_stage
from pipeline.run.stages import STAGES, fingerprints, require_upstream
from pipeline.spark.outputs import ddl
from pipeline.text.counting import COUNTS_SCHEMA, count_entries, counts_table, sparse_counts, sum_sparse_counts
from pipeline.text.vocabulary import Vocabulary

COUNT = STAGES["count"]


def _partial_counts(vocabulary_size: int):
    def run(batches):
        total = np.zeros(vocabulary_size, dtype=np.int64)
        for batch in batches:
            total += count_entries(batch.column("entry_ids"), vocabulary_size)
        yield sparse_counts(total)
    return run


def entry_counts(df: DataFrame, vocabulary_size: int) -> np.ndarray:
    """Samples per entry over a DataFrame with an `entry_ids` column."""
    partials = df.select("entry_ids").mapInArrow(_partial_counts(vocabulary_size), ddl(COUNTS_SCHEMA))
    counts = np.zeros(vocabulary_size, dtype=np.int64)
    for row in partials.groupBy("entry_id").sum("count").collect():
        counts[row[0]] = row[1]
    return counts


def run_count(run_dir: Path, vocabulary: Vocabulary, force: bool = False) -> dict:
    """The count stage: no Spark job, the match tasks left their partial counts. Worldwide, entry_counts has each
    entry's language."""
    manifests = require_upstream(run_dir, COUNT.name)
    match = STAGES["match"]
    upstream, partial_counts = manifests[match.folder], match.file(run_dir, "partial_counts")
    if not partial_counts.is_dir():
        raise FileNotFoundError(f"{partial_counts}: made by an older match stage; rerun it with --force")
    entries, languages = vocabulary.entries, vocabulary.entry_languages()

    def body(out_dir: Path) -> StageResult:
        counts = sum_sparse_counts(partial_counts, len(entries))
        pq.write_table(counts_table(entries, counts, languages), out_dir / COUNT.files["counts"])
        return StageResult(rows_in=upstream["rows_out"], rows_out=upstream["rows_out"], extra={
            "entries": len(entries), "entries_matched": int((counts > 0).sum()),
            "matches": int(counts.sum())})

    return run_stage(run_dir, COUNT.folder, {"vocabulary_size": len(entries)}, fingerprints(manifests), body,
                     force=force)
