"""Pool images that duplicate evaluation images (what DataComp and MetaCLIP 2 remove before training).

Three tests, strongest first: the same bytes (sha256), a near-exact copy (the pHash rule validation uses
within the pool: at most `max_phash_distance` differing bits), and, when the run has embeddings, semantic
(cosine similarity above `semantic_threshold` to an evaluation image; pipeline.spark.decontaminate).
Each removal names the evaluation image it duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.image.neardup import MAX_PHASH_DISTANCE

SEMANTIC_THRESHOLD = 0.95  # cosine similarity above which a pool image counts as an evaluation image's copy
ROWS_PER_BLOCK = 1024  # pool hashes compared with every evaluation hash at once


@dataclass(frozen=True)
class DecontaminationConfig:
    """Where the evaluation images are, and how close a pool image may come to one."""

    eval: tuple[str, ...]
    max_phash_distance: int = MAX_PHASH_DISTANCE
    semantic_threshold: float = SEMANTIC_THRESHOLD


@dataclass(frozen=True)
class EvalMatch:
    row: int  # the pool image's position in the batch given
    eval_index: int  # the evaluation image it duplicates
    kind: str  # exact, near or semantic
    score: float  # differing pHash bits (near), cosine similarity (semantic), 0 (exact)


def hash_matches(sha256: Sequence[str], phash: np.ndarray, eval_sha256: dict[str, int], eval_phash: np.ndarray,
                 max_distance: int) -> list[EvalMatch]:
    """Pool images equal to an evaluation image, else within max_distance pHash bits of the nearest one."""
    matches = [EvalMatch(row, eval_sha256[digest], "exact", 0.0) for row, digest in enumerate(sha256)
               if digest in eval_sha256]
    exact = {match.row for match in matches}
    pool = np.asarray(phash, dtype=np.int64).view(np.uint64)
    reference = np.asarray(eval_phash, dtype=np.int64).view(np.uint64)
    for start in range(0, len(pool), ROWS_PER_BLOCK):
        bits = np.bitwise_count(pool[start:start + ROWS_PER_BLOCK, None] ^ reference[None, :])
        nearest = bits.argmin(axis=1)
        distance = bits[np.arange(len(nearest)), nearest]
        for offset in np.flatnonzero(distance <= max_distance):
            if start + offset not in exact:
                matches.append(EvalMatch(int(start + offset), int(nearest[offset]), "near", float(distance[offset])))
    return sorted(matches, key=lambda match: match.row)


def describe(match: EvalMatch, eval_name: str) -> str:
    """The reject's detail: how the pool image duplicates which evaluation image."""
    if match.kind == "exact":
        return f"same sha256 as evaluation image {eval_name}"
    if match.kind == "near":
        return f"perceptual hash within {match.score:.0f} bits of evaluation image {eval_name}"
    return f"cosine similarity {match.score:.4f} to evaluation image {eval_name}"
