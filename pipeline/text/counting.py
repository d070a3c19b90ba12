"""Per-entry counts: how many distinct samples match each vocabulary entry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.text.balancing import as_list_array

COUNTS_SCHEMA = pa.schema([("entry_id", pa.int32()), ("count", pa.int64())])


def count_entries(entry_ids, vocabulary_size: int) -> np.ndarray:
    """Counts per entry id; each row lists distinct ids, so a row adds at most 1 to an entry."""
    values = as_list_array(entry_ids).flatten().to_numpy(zero_copy_only=False)
    return np.bincount(values, minlength=vocabulary_size).astype(np.int64)


def sparse_counts(counts: np.ndarray) -> pa.RecordBatch:
    """The nonzero counts as (entry_id, count) rows: what a worker sends back for summing."""
    ids = np.flatnonzero(counts)
    return pa.RecordBatch.from_arrays([pa.array(ids.astype(np.int32)), pa.array(counts[ids])],
                                      schema=COUNTS_SCHEMA)


def sum_sparse_counts(directory: Path, vocabulary_size: int) -> np.ndarray:
    """The sum of the sparse counts that tasks wrote as Parquet parts into directory."""
    parts = pq.read_table(directory, schema=COUNTS_SCHEMA)
    return np.bincount(parts.column("entry_id").to_numpy(), weights=parts.column("count").to_numpy(),
                       minlength=vocabulary_size).astype(np.int64)


def counts_table(entries: list[str], counts: np.ndarray, languages: np.ndarray | None = None,
                 **extra_columns) -> pa.Table:
    """The entry_counts dataset: one row per vocabulary entry, in vocabulary order; worldwide, each entry's
    language."""
    columns = {"entry_id": pa.array(np.arange(len(entries), dtype=np.int32)),
               "entry": pa.array(entries, pa.string()),
               "count": pa.array(counts.astype(np.int64))}
    if languages is not None:
        columns["language"] = pa.array(languages, pa.string())
    columns.update({name: pa.array(values) for name, values in extra_columns.items()})
    return pa.table(columns)


def entry_languages(table: pa.Table) -> np.ndarray | None:
    """Each entry's language from an entry_counts table; None for a run curated in one vocabulary."""
    return table.column("language").to_numpy(zero_copy_only=False) if "language" in table.column_names else None
