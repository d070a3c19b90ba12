"""Does the embedder tell duplicates from distinct images? The measurement behind `--eps auto`.

A poor embedder (an untrained model, a model of another domain) puts most images near each other, and
SemDeDup at a textbook eps would then remove most of a pool. So before deduplicating, the run's known
duplicates (the exact and perceptual-hash groups validation found) and random pairs of distinct images
(validation kept both) are compared for every candidate eps:

- duplicate_recall: the share of known duplicate pairs SemDeDup would merge (cosine above 1 - eps);
- false_merge_rate: the share of distinct pairs it would merge;
- distinct_removed: what that rate means per image: SemDeDup compares each image with every other of its
  cluster, so an image of a cluster of m meets m - 1 chances of a false merge, and 1 - (1 - rate)^(m - 1)
  of distinct images would go. A rate of 0.3% looks harmless, yet removes a third of a cluster of 150.

`auto_eps` takes the largest eps whose false-merge rate and distinct_removed both stay under the limit;
none may qualify.
"""

from __future__ import annotations

import numpy as np

AUTO_EPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3)  # the candidates of --eps auto
MAX_FALSE_MERGE = 0.01  # the largest share of distinct pairs --eps auto lets SemDeDup merge
DISTINCT_IMAGES = 2_000  # images drawn for the distinct pairs: every pair among them is compared
DUPLICATE_PAIRS = 10_000  # known duplicate pairs drawn, at most


def pair_similarities(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cosine similarity of aligned rows of unit vectors."""
    return np.einsum("ij,ij->i", first, second)


def distinct_similarities(unit: np.ndarray) -> np.ndarray:
    """Cosine similarity of every unordered pair of rows (the upper triangle of the Gram matrix)."""
    upper = np.triu_indices(len(unit), k=1)
    return (unit @ unit.T)[upper]


def cross_match_rate(first: np.ndarray, second: np.ndarray, threshold: float) -> float | None:
    """Share of pairs (one row of each, unit vectors) with cosine similarity above threshold: how often two
    unrelated images would pass for copies."""
    if not len(first) or not len(second):
        return None
    return float(np.mean(first @ second.T > threshold))


def separation_table(duplicates: np.ndarray, distinct: np.ndarray, eps_values, cluster_size: float) -> list[dict]:
    """For each eps: how many known duplicate pairs and distinct pairs SemDeDup would merge, their shares, and
    the share of distinct images it would remove from clusters of cluster_size (the mean)."""
    rows = []
    for eps in sorted(eps_values):
        threshold = 1.0 - eps
        merged_duplicates = int(np.sum(duplicates > threshold))
        merged_distinct = int(np.sum(distinct > threshold))
        rows.append({"eps": float(eps), "duplicate_pairs": len(duplicates), "duplicates_found": merged_duplicates,
                     "duplicate_recall": merged_duplicates / len(duplicates) if len(duplicates) else None,
                     "distinct_pairs": len(distinct), "distinct_merged": merged_distinct,
                     "false_merge_rate": merged_distinct / len(distinct) if len(distinct) else None})
        rate = rows[-1]["false_merge_rate"]
        rows[-1]["distinct_removed"] = None if rate is None else 1.0 - (1.0 - rate) ** max(cluster_size - 1, 0)
    return rows


def auto_eps(table: list[dict], max_false_merge: float = MAX_FALSE_MERGE) -> float | None:
    """The largest eps whose false-merge rate and distinct_removed are under the limit; None when no eps
    qualifies or the run has too few distinct images to measure it (fewer than two)."""
    qualifying = [row["eps"] for row in table if row["false_merge_rate"] is not None
                  and max(row["false_merge_rate"], row["distinct_removed"]) < max_false_merge]
    return max(qualifying) if qualifying else None


def describe_choice(table: list[dict], chosen: float | None, max_false_merge: float = MAX_FALSE_MERGE) -> str:
    """One line saying what --eps auto chose and why."""
    if not table or table[0]["distinct_pairs"] == 0:
        return "eps auto: fewer than two distinct images to measure; SemDeDup removes nothing"
    if chosen is None:
        smallest = table[0]
        return (f"eps auto: no eps keeps false merges under {max_false_merge:.0%} (at eps {smallest['eps']:g} "
                f"{smallest['false_merge_rate']:.2%} of {smallest['distinct_pairs']:,} distinct pairs merge, which "
                f"would remove {smallest['distinct_removed']:.0%} of distinct images); the embedder does not "
                f"separate images, so SemDeDup removes nothing")
    row = next(row for row in table if row["eps"] == chosen)
    found = ("no known duplicates to check" if row["duplicate_recall"] is None else
             f"finds {row['duplicate_recall']:.0%} of {row['duplicate_pairs']:,} known duplicate pairs")
    return (f"eps auto: {chosen:g} merges {row['false_merge_rate']:.3%} of {row['distinct_pairs']:,} distinct "
            f"pairs (about {row['distinct_removed']:.2%} of distinct images removed) and {found}")
