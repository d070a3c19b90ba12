"""MetaCLIP balancing: cap every entry near t samples, keep the long tail whole.

p(entry) = min(1, t / count). A sample is kept when any of its matched entries' draws falls under that
entry's p, so its keep probability is 1 - prod(1 - p). Draws come from `pipeline.hashing`.
Matched entry lists are passed as (offsets, values) in Arrow ListArray layout, so the same code serves a
Python list of lists, an Arrow column and a Spark Arrow batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from pipeline.hashing import entry_draws, uid_states, uid_words


@dataclass(frozen=True)
class BalanceConfig:
    """Either t (MetaCLIP: 20k for 400M from 1.6B) or a target size to solve t for; a seed for the draws.
    Worldwide, t is English's and `t_per_language` overrides the derived t of the languages it names."""

    t: float | None = 20000.0
    target_size: int | None = None
    seed: int = 0
    t_per_language: tuple[tuple[str, float], ...] = ()


def entry_probabilities(counts, t: float | np.ndarray) -> np.ndarray:
    """min(1, t / count) per entry, t one for all or one per entry (worldwide: its language's); an entry that
    matched nothing gets 0."""
    counts = np.asarray(counts, dtype=np.float64)
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), counts.shape)
    probs = np.zeros_like(counts)
    seen = counts > 0
    probs[seen] = np.minimum(1.0, t[seen] / counts[seen])
    return probs


def as_list_array(entry_ids) -> pa.ListArray:
    """Entry id lists (Python lists, Arrow list array or chunked column) as one Arrow ListArray."""
    if isinstance(entry_ids, pa.ChunkedArray):
        entry_ids = entry_ids.combine_chunks()
    if not isinstance(entry_ids, (pa.ListArray, pa.LargeListArray)):
        entry_ids = pa.array(entry_ids, type=pa.list_(pa.int32()))
    return entry_ids


def _flat(entry_ids: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
    """Row index and entry id of every (row, matched entry) pair."""
    offsets = entry_ids.offsets.to_numpy()
    values = entry_ids.flatten().to_numpy(zero_copy_only=False)
    lengths = np.diff(offsets)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    return rows, values


def keep_probabilities(entry_ids, probs: np.ndarray) -> np.ndarray:
    """1 - prod(1 - p) per row: the chance that balancing keeps each sample."""
    entry_ids = as_list_array(entry_ids)
    rows, values = _flat(entry_ids)
    with np.errstate(divide="ignore"):
        log_miss = np.log1p(-probs[values])
    total = np.bincount(rows, weights=log_miss, minlength=len(entry_ids))
    return 1.0 - np.exp(total)


def keep_mask(uids: Sequence[str] | pa.Array, entry_ids, probs: np.ndarray, seed: int) -> np.ndarray:
    """Whether each sample is kept: any matched entry's draw under its p. Unmatched rows are dropped."""
    entry_ids = as_list_array(entry_ids)
    rows, values = _flat(entry_ids)
    if len(values) == 0:
        return np.zeros(len(entry_ids), dtype=bool)
    draws = entry_draws(uid_states(seed, *uid_words(uids))[rows], values)
    hits = draws < probs[values]
    return np.bincount(rows[hits], minlength=len(entry_ids)) > 0


def keep(uid: str, entry_ids: Sequence[int], probs: np.ndarray, seed: int) -> bool:
    """The balancing decision for one sample (same draws as `keep_mask`)."""
    return bool(keep_mask([uid], [list(entry_ids)], probs, seed)[0])


def expected_size(entry_ids, counts, t: float) -> float:
    """Exact expected number of samples kept at threshold t."""
    return float(keep_probabilities(entry_ids, entry_probabilities(counts, t)).sum())


def solve_t_with(expected: Callable[[float], float], target_size: float, max_count: float,
                 rel_tol: float = 1e-4) -> float:
    """Smallest t (to rel_tol) whose expected size reaches target_size, by bisection.

    `expected` is any evaluator of the expected size at t (in memory here, a Spark job in the binding).
    The expected size grows with t and is final at t = max_count, where every p is 1.
    """
    if target_size <= 0:
        raise ValueError("target size must be positive")
    if expected(max_count) <= target_size:
        return float(max_count)
    low, high = 0.0, float(max_count)
    while high - low > rel_tol * high:
        middle = (low + high) / 2
        if expected(middle) < target_size:
            low = middle
        else:
            high = middle
    return high


def solve_t(entry_ids, counts, target_size: float) -> float:
    """t whose exact expected curated size equals target_size (within 0.01% of t)."""
    entry_ids = as_list_array(entry_ids)
    counts = np.asarray(counts, dtype=np.float64)
    _, values = _flat(entry_ids)
    max_count = float(counts[values].max()) if len(values) else 1.0
    return solve_t_with(lambda t: expected_size(entry_ids, counts, t), target_size, max_count)
