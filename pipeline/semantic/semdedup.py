"""SemDeDup: semantic near-duplicates among embeddings, found within k-means clusters.

1. Normalize the embeddings; spherical k-means (on a seeded sample when the pool is large), every sample
   assigned to its nearest centroid. FAISS or torch, on a GPU when there is one (backends.py).
2. Within a cluster, samples are visited nearest-to-centroid first; a sample is removed when its cosine
   similarity to an already kept sample exceeds 1 - eps, and it names the most similar kept sample.
   So of a group of duplicates, the one nearest the centroid (the most typical) is kept.
Several eps values share the clustering and each cluster's similarity matrix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from pipeline.errors import UserInputError
from pipeline.semantic.backends import choose_backend, initial_centroids

AUTO = "auto"  # eps chosen by how well the embeddings separate the run's known duplicates (separation.py)


@dataclass(frozen=True)
class DedupConfig:
    """SemDeDup's settings: a sample closer than 1 - eps to a kept one goes; several eps in one run, or AUTO."""

    eps: tuple[float, ...] | str = AUTO
    clusters: int = 100  # k-means clusters
    seed: int = 0
    backend: str = "auto"  # backends.BACKENDS: faiss-gpu, else CUDA torch, else faiss-cpu


DEDUP_SCHEMA = pa.schema([
    ("uid", pa.string()), ("cluster", pa.int32()), ("status", pa.string()), ("duplicate_of", pa.string()),
    ("similarity", pa.float32()), ("eps", pa.float64()),
])
POINTS_PER_CENTROID = 256  # k-means is fitted on at most this many samples per cluster (FAISS's own default)


def chosen_eps(offered: Sequence[float], requested: float | None) -> float | None:
    """The eps a later stage applies: the one asked for, which the dedup stage must have computed, else the
    first (smallest) it computed; None when it computed none (--eps auto found no eps that separates)."""
    offered = sorted(offered)
    if requested is None:
        return offered[0] if offered else None
    if not offered:
        raise UserInputError(f"--eps {requested:g}: the dedup stage removed nothing (--eps auto found no eps "
                             f"that separates the embeddings); rerun jobs/dedup.py with --eps {requested:g}")
    if requested not in offered:
        raise UserInputError(f"--eps {requested:g} is not one of the dedup stage's eps "
                             f"({', '.join(f'{eps:g}' for eps in offered)}); rerun jobs/dedup.py with it")
    return requested


def normalized(embeddings: np.ndarray, uids: Sequence[str]) -> np.ndarray:
    """float32 unit vectors; a NaN, infinite or zero vector is an error naming its uid."""
    vectors = np.asarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(uids):
        raise UserInputError(f"expected {len(uids)} embeddings as a 2-D array, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1)
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise UserInputError(f"{int(bad.sum())} embeddings are NaN, infinite or zero (first: uid {uids[first]})")
    return vectors / norms[:, None]


def spherical_kmeans(vectors: np.ndarray, clusters: int, seed: int, niter: int = 20, backend=None) -> np.ndarray:
    """Unit centroids fitted on a seeded sample of at most POINTS_PER_CENTROID samples per cluster."""
    if not 1 <= clusters <= len(vectors):
        raise UserInputError(f"--clusters must be between 1 and the number of samples ({len(vectors)}), "
                             f"got {clusters}")
    rng = np.random.default_rng(seed)
    sample_size = min(len(vectors), clusters * POINTS_PER_CENTROID)
    sample = np.ascontiguousarray(vectors[np.sort(rng.choice(len(vectors), sample_size, replace=False))])
    return (backend or choose_backend()).kmeans(sample, initial_centroids(sample, clusters, seed), niter)


def assign(vectors: np.ndarray, centroids: np.ndarray, backend=None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every vector (inner product of unit vectors) and that similarity."""
    return (backend or choose_backend()).nearest(vectors, centroids)


def dedup_cluster(vectors: np.ndarray, centroid_similarity: np.ndarray, eps_values: Iterable[float],
                  backend=None) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """For one cluster and each eps: the index of the kept sample each sample duplicates (-1 if kept), and
    the similarity to it."""
    eps_values = sorted(eps_values)
    order = np.argsort(-centroid_similarity, kind="stable")
    earlier, later, pair_similarity = (backend or choose_backend()).close_pairs(
        np.ascontiguousarray(vectors[order]), 1.0 - eps_values[-1])
    by_later = np.lexsort((earlier, -pair_similarity, later))  # per later sample: most similar first, then earliest
    earlier, later, pair_similarity = earlier[by_later], later[by_later], pair_similarity[by_later]
    starts = np.searchsorted(later, np.arange(len(order) + 1))
    results = {}
    for eps in eps_values:
        above = pair_similarity > 1.0 - eps
        kept = np.ones(len(order), dtype=bool)
        duplicate_of = np.full(len(order), -1, dtype=np.int64)
        best = np.zeros(len(order), dtype=np.float32)
        for position in np.unique(later[above]):  # samples with no close earlier one are kept outright
            span = slice(starts[position], starts[position + 1])
            candidates = np.flatnonzero(above[span] & kept[earlier[span]])
            if len(candidates):
                chosen = span.start + candidates[0]
                kept[position] = False
                duplicate_of[order[position]] = order[earlier[chosen]]
                best[order[position]] = pair_similarity[chosen]
        results[eps] = (duplicate_of, best)
    return results


def cluster_rows(uids: Sequence[str], vectors: np.ndarray, cluster: int, centroid_similarity: np.ndarray,
                 eps_values: Iterable[float], backend=None) -> pa.Table:
    """The result rows (DEDUP_SCHEMA) of one cluster's unit vectors, for every eps."""
    uid_array = np.array(list(uids), dtype=object)
    tables = []
    for eps, (duplicate_of, similarity) in dedup_cluster(vectors, centroid_similarity, eps_values, backend).items():
        removed = duplicate_of >= 0
        tables.append(pa.table({
            "uid": pa.array(uid_array.tolist(), pa.string()),
            "cluster": pa.array(np.full(len(uid_array), cluster), pa.int32()),
            "status": pa.array(np.where(removed, "removed", "kept").tolist(), pa.string()),
            "duplicate_of": pa.array(np.where(removed, uid_array[np.maximum(duplicate_of, 0)], None).tolist(),
                                     pa.string()),
            "similarity": pa.array(similarity, pa.float32(), mask=~removed),
            "eps": pa.array([eps] * len(uid_array), pa.float64()),
        }, schema=DEDUP_SCHEMA))
    return pa.concat_tables(tables)


def eps_list(eps: float | Sequence[float]) -> tuple[float, ...]:
    """Distinct eps values in increasing order, each strictly between 0 and 1."""
    values = tuple(sorted({float(eps)} if np.isscalar(eps) else {float(value) for value in eps}))
    if not values or not all(0 < value < 1 for value in values):
        raise UserInputError(f"eps must be between 0 and 1, got {eps}")
    return values


@dataclass
class SemDedupResult:
    table: pa.Table  # DEDUP_SCHEMA, one row per (sample, eps), ordered by eps then uid
    centroids: np.ndarray
    sizes: dict[float, int]  # samples kept per eps
    device: str  # the backend: faiss-gpu, torch on a device, or faiss-cpu
    seconds: dict[str, float]  # wall time of each step: kmeans, assign, dedup


def semdedup(embeddings: np.ndarray, uids: Sequence[str], eps: float | Sequence[float], clusters: int,
             seed: int = 0, backend: str = "auto") -> SemDedupResult:
    """SemDeDup of in-memory embeddings: one row per sample and eps (kept, or removed as whose duplicate)."""
    eps_values = eps_list(eps)
    engine = choose_backend(backend)
    uids = np.array(list(uids), dtype=object)
    started = time.perf_counter()
    vectors = normalized(embeddings, uids)
    centroids = spherical_kmeans(vectors, clusters, seed, backend=engine)
    seconds = {"kmeans": time.perf_counter() - started}
    started = time.perf_counter()
    cluster, centroid_similarity = assign(vectors, centroids, engine)
    seconds["assign"] = time.perf_counter() - started
    started = time.perf_counter()
    by_cluster = np.argsort(cluster, kind="stable")
    labels, starts = np.unique(cluster[by_cluster], return_index=True)
    tables = [cluster_rows(uids[members], vectors[members], int(label), centroid_similarity[members], eps_values,
                           engine)
              for label, members in zip(labels, np.split(by_cluster, starts[1:]))]
    table = pa.concat_tables(tables).sort_by([("eps", "ascending"), ("uid", "ascending")])
    seconds["dedup"] = time.perf_counter() - started
    kept = table.filter(pa.compute.equal(table.column("status"), "kept")).column("eps").to_numpy()
    sizes = {value: int(np.sum(kept == value)) for value in eps_values}
    return SemDedupResult(table, centroids, sizes, engine.label, seconds)
