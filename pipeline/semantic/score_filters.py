"""Filters that score pairs with their embeddings, as the literature's best subsets are chosen.

- CLIP score (DataComp, Gadre et al. 2023): the cosine of a sample's image and caption embeddings; keep those
  above a threshold, or the top fraction (DataComp's best baselines keep the top 30%).
- DataComp's image-based filter: k-means over the pool's image embeddings; a sample is kept when its nearest
  centroid is the nearest centroid of some image of a target set (ImageNet's training images there).
- Density-based pruning (Abbas et al. 2024, "Effective pruning of web-scale datasets based on complexity of
  concept clusters", ICLR 2024, arXiv:2401.04578): k-means concept clusters; each cluster's complexity is
  d_intra (mean cosine distance of its samples to its centroid) times d_inter (mean cosine distance of its centroid
  to its nearest other centroids); the kept samples are shared out by softmax(complexity / temperature), as near
  to those shares as the clusters' sizes allow (the paper's quadratic program); within a cluster the most
  prototypical samples (nearest the centroid) are pruned first.

The filters apply in that order, each to what the one before kept. Everything here is plain numpy on vectors in
memory: the Spark stage (pipeline.spark.score_filter) computes the same quantities per task and decides with
these functions, and notebooks call `score_filter` on a run's embeddings for their sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.errors import UserInputError
from pipeline.semantic.backends import choose_backend
from pipeline.semantic.semdedup import assign, normalized, spherical_kmeans

LOW_CLIP_SCORE, OFF_TARGET, PRUNED_DENSE = "low_clip_score", "off_target", "pruned_dense"
ROWS_PER_BLOCK = 65536  # rows scored at once: bounds the float32 copies of two float16 blocks


@dataclass(frozen=True)
class ScoreFilterConfig:
    """Which filters run (each optional) and their settings; defaults follow the papers."""

    clip_score_min: float | None = None  # keep samples whose image-caption cosine is at least this
    clip_score_top: float | None = None  # keep this fraction of the samples, highest cosine first
    target_images: tuple[str, ...] = ()  # image-based filter: folders, tars, list files or images
    centroids: int = 1000  # image-based filter's k-means clusters (DataComp: 100,000 for 128M samples)
    density_prune: float | None = None  # density-based pruning: the fraction of samples kept
    density_clusters: int = 500  # its concept clusters (the paper: 500 for LAION-DataComp 100M)
    density_neighbours: int = 20  # centroids d_inter averages over (the paper: 20)
    temperature: float = 0.1  # of the softmax over complexities (the paper's default)
    seed: int = 0
    backend: str = "auto"  # backends.BACKENDS

    def __post_init__(self):
        for name in ("clip_score_top", "density_prune"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise UserInputError(f"--{name.replace('_', '-')} is a fraction of the samples: between 0 and 1, "
                                     f"got {value:g}")
        if self.clip_score_min is not None and not -1 <= self.clip_score_min <= 1:
            raise UserInputError(f"--clip-score-min is a cosine: between -1 and 1, got {self.clip_score_min:g}")
        for name in ("centroids", "density_clusters", "density_neighbours"):
            if getattr(self, name) < 1:
                raise UserInputError(f"--{name.replace('_', '-')} must be at least 1")
        if self.temperature <= 0:
            raise UserInputError(f"--temperature must be positive, got {self.temperature:g}")

    @property
    def image_based(self) -> bool:
        return bool(self.target_images)

    def asked(self) -> bool:
        return (self.clip_score_min is not None or self.clip_score_top is not None or self.image_based
                or self.density_prune is not None)


def clip_scores(image: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Row-wise cosine of unit image and caption embeddings (float16 or float32), as float32."""
    if image.shape != text.shape:
        raise UserInputError(f"image and caption embeddings differ in shape: {image.shape} and {text.shape}")
    scores = np.empty(len(image), np.float32)
    for start in range(0, len(image), ROWS_PER_BLOCK):
        block = slice(start, start + ROWS_PER_BLOCK)
        scores[block] = np.einsum("ij,ij->i", np.asarray(image[block], np.float32),  # no copy of float32 rows
                                  np.asarray(text[block], np.float32))
    return scores


def top_threshold(scores: np.ndarray, fraction: float) -> float:
    """The score of the last sample the top `fraction` keeps (round(fraction * n), at least one): keeping scores
    at or above it keeps that many, and ties with it."""
    if not len(scores):
        return float("inf")
    keep = min(len(scores), max(1, round(fraction * len(scores))))
    return float(np.partition(np.asarray(scores, np.float32), len(scores) - keep)[len(scores) - keep])


def score_threshold(config: ScoreFilterConfig, scores: np.ndarray) -> float | None:
    """The least CLIP score kept: the larger of --clip-score-min and the top fraction's threshold; None when
    neither is asked."""
    thresholds = [value for value in (config.clip_score_min,
                                      None if config.clip_score_top is None else top_threshold(
                                          scores, config.clip_score_top)) if value is not None]
    return max(thresholds) if thresholds else None


def fit_centroids(sample: np.ndarray, clusters: int, seed: int, backend=None) -> np.ndarray:
    """Spherical k-means centroids of a sample of unit vectors (at most one cluster per sample)."""
    return spherical_kmeans(sample, min(clusters, len(sample)), seed, backend=backend)


def target_clusters(target: np.ndarray, centroids: np.ndarray, backend=None) -> np.ndarray:
    """The clusters DataComp's image-based filter keeps: the nearest centroid of each target image, sorted."""
    nearest, _ = assign(normalized(target, [f"target image {i}" for i in range(len(target))]), centroids, backend)
    return np.unique(nearest)


def cluster_complexity(centroids: np.ndarray, intra_distance: np.ndarray, neighbours: int) -> np.ndarray:
    """Each cluster's complexity, d_intra * d_inter (Abbas et al. 2024, sec. 3): d_inter is the mean cosine
    distance of its centroid to its `neighbours` nearest other centroids (1 with a single cluster)."""
    if len(centroids) == 1:
        return np.asarray(intra_distance, np.float64)
    distance = 1.0 - np.clip(centroids.astype(np.float64) @ centroids.T.astype(np.float64), -1.0, 1.0)
    np.fill_diagonal(distance, np.inf)
    nearest = np.sort(distance, axis=1)[:, :min(neighbours, len(centroids) - 1)]
    return np.asarray(intra_distance, np.float64) * nearest.mean(axis=1)


def cluster_quotas(complexity: np.ndarray, sizes: np.ndarray, total: int, temperature: float) -> np.ndarray:
    """How many samples each cluster keeps: `total` shared by softmax(complexity / temperature), as near to those
    shares as the sizes allow. The nearest feasible split in squared distance (the paper's quadratic program) is
    the shares moved by one constant and clipped to [0, size]; the constant is found by bisection, then the
    split is rounded to whole samples summing to `total` (largest remainders first, ties to the lower cluster)."""
    sizes = np.asarray(sizes, np.int64)
    total = int(min(total, sizes.sum()))
    logits = np.asarray(complexity, np.float64) / temperature
    shares = np.exp(logits - logits.max())
    ideal = total * shares / shares.sum()
    low, high = -ideal.max() - 1.0, float(sizes.max()) + 1.0  # kept(low) = 0 <= total <= sum(sizes) = kept(high)
    for _ in range(200):
        middle = (low + high) / 2
        if np.clip(ideal + middle, 0, sizes).sum() < total:
            low = middle
        else:
            high = middle
    exact = np.clip(ideal + high, 0, sizes)
    quotas = np.minimum(np.floor(exact).astype(np.int64), sizes)
    short = total - int(quotas.sum())
    if short > 0:
        room = np.flatnonzero(quotas < sizes)
        by_remainder = room[np.lexsort((room, -(exact[room] - quotas[room])))]
        quotas[by_remainder[:short]] += 1
    return quotas


def density_total(config: ScoreFilterConfig, reaching: int) -> int:
    """Samples density-based pruning keeps of the `reaching` ones the filters before it kept."""
    return round(config.density_prune * reaching)


def prune_order(cluster: np.ndarray, centroid_similarity: np.ndarray, uids: Sequence[str]) -> np.ndarray:
    """Positions sorted by cluster, then least prototypical first (lowest similarity to the centroid, then uid):
    a cluster keeps the first `quota` of its run."""
    return np.lexsort((np.asarray(uids, dtype=object).astype(str), centroid_similarity, cluster))


@dataclass
class ScoreFilterResult:
    score: np.ndarray  # float32 CLIP score per sample
    target_cluster: np.ndarray | None  # int32, image-based filter's cluster per sample
    cluster: np.ndarray | None  # int32, density-based pruning's cluster per sample
    reason: np.ndarray  # object: None where kept, else LOW_CLIP_SCORE / OFF_TARGET / PRUNED_DENSE
    threshold: float | None
    quotas: np.ndarray | None  # per density cluster: samples it keeps

    @property
    def kept(self) -> np.ndarray:
        return np.array([reason is None for reason in self.reason], dtype=bool)


def score_filter(uids: Sequence[str], image: np.ndarray, text: np.ndarray, config: ScoreFilterConfig,
                 target: np.ndarray | None = None) -> ScoreFilterResult:
    """All three filters over embeddings in memory (a notebook's sweep, a benchmark). k-means is fitted on the
    whole set here; the Spark stage fits it on a seeded sample of a large pool."""
    engine = choose_backend(config.backend)
    image = normalized(image, uids)
    score = clip_scores(image, normalized(text, uids))
    threshold = score_threshold(config, score)
    reason = np.full(len(uids), None, dtype=object)
    if threshold is not None:
        reason[score < threshold] = LOW_CLIP_SCORE
    target_cluster = cluster = quotas = None
    if config.image_based:
        if target is None:
            raise UserInputError("the image-based filter needs the target images' embeddings")
        centroids = fit_centroids(image, config.centroids, config.seed, engine)
        target_cluster, _ = assign(image, centroids, engine)
        off = ~np.isin(target_cluster, target_clusters(target, centroids, engine))
        reason[off & (reason == None)] = OFF_TARGET  # noqa: E711 - elementwise over an object array
    if config.density_prune is not None:
        centroids = fit_centroids(image, config.density_clusters, config.seed, engine)
        cluster, similarity = assign(image, centroids, engine)
        alive = np.flatnonzero(reason == None)  # noqa: E711
        sizes = np.bincount(cluster[alive], minlength=len(centroids))
        intra = np.bincount(cluster[alive], weights=1.0 - similarity[alive], minlength=len(centroids))
        complexity = cluster_complexity(centroids, intra / np.maximum(sizes, 1), config.density_neighbours)
        quotas = cluster_quotas(complexity, sizes, density_total(config, len(alive)), config.temperature)
        ordered = alive[prune_order(cluster[alive], similarity[alive], [uids[i] for i in alive])]
        rank = np.arange(len(ordered)) - np.searchsorted(cluster[ordered], cluster[ordered])
        reason[ordered[rank >= quotas[cluster[ordered]]]] = PRUNED_DENSE
    return ScoreFilterResult(score, target_cluster, cluster, reason, threshold, quotas)
