"""The score filters' arithmetic: CLIP score thresholds, density pruning's quotas (the paper's quadratic program,
rounded to whole samples) and its order within a cluster, and settings that cannot hold."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import UserInputError
from pipeline.semantic.score_filters import (
    LOW_CLIP_SCORE,
    PRUNED_DENSE,
    ScoreFilterConfig,
    clip_scores,
    cluster_complexity,
    cluster_quotas,
    score_filter,
    score_threshold,
    top_threshold,
)


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_clip_score_is_the_cosine_of_each_pair_also_from_float16():
    rng = np.random.default_rng(0)
    image, text = unit(rng.normal(size=(70_000, 8))), unit(rng.normal(size=(70_000, 8)))  # more than one block
    expected = (image * text).sum(axis=1)
    assert np.allclose(clip_scores(image, text), expected, atol=1e-6)
    assert np.allclose(clip_scores(image.astype(np.float16), text.astype(np.float16)), expected, atol=2e-3)
    with pytest.raises(UserInputError, match="differ in shape"):
        clip_scores(image, text[:, :4])


def test_the_top_fraction_keeps_that_many_and_the_minimum_can_only_raise_the_bar():
    scores = np.arange(10, dtype=np.float32) / 10  # 0.0 ... 0.9
    assert top_threshold(scores, 0.3) == pytest.approx(0.7) and (scores >= top_threshold(scores, 0.3)).sum() == 3
    assert top_threshold(scores, 0.01) == pytest.approx(0.9)  # at least one sample
    assert top_threshold(scores, 1.0) == 0.0
    assert score_threshold(ScoreFilterConfig(clip_score_top=0.3, clip_score_min=0.85), scores) == pytest.approx(0.85)
    assert score_threshold(ScoreFilterConfig(clip_score_top=0.3, clip_score_min=0.2), scores) == pytest.approx(0.7)
    assert score_threshold(ScoreFilterConfig(density_prune=0.5), scores) is None


def test_quotas_sum_to_the_total_respect_sizes_and_follow_the_softmax():
    complexity = np.array([0.01, 0.05, 0.10, 0.20, 0.30])
    sizes = np.array([100, 100, 100, 100, 12])
    quotas = cluster_quotas(complexity, sizes, 150, temperature=0.1)
    assert quotas.sum() == 150 and (quotas <= sizes).all() and (quotas >= 0).all()
    assert quotas[4] == 12  # the most complex cluster is capped at its size, the rest shared out again
    assert (np.diff(quotas[:4]) >= 0).all()  # uncapped: more complex keeps more
    shares = np.exp(complexity / 0.1)
    moved = quotas[:4] - 150 * shares[:4] / shares.sum()  # the nearest feasible split: the shares plus one constant
    assert np.ptp(moved) <= 1.0 and moved.min() > 0  # (up to rounding), given what the capped one could not take
    assert cluster_quotas(complexity, sizes, 412, 0.1).tolist() == sizes.tolist()  # keep all: everything
    assert cluster_quotas(complexity, sizes, 0, 0.1).sum() == 0
    flat = cluster_quotas(complexity, sizes, 150, temperature=100.0)  # hot: nearly even shares
    assert np.ptp(flat[:4]) <= 1 and flat[4] == 12  # the small one is capped at its size


def test_complexity_is_spread_times_distance_to_the_nearest_centroids():
    centroids = unit(np.array([[1.0, 0.0], [0.8, 0.6], [-1.0, 0.0]]))
    complexity = cluster_complexity(centroids, np.array([0.1, 0.2, 0.3]), neighbours=1)
    nearest = np.array([1 - 0.8, 1 - 0.8, 1 - (-0.8)])  # 1 - cosine to its nearest other centroid
    assert np.allclose(complexity, [0.1, 0.2, 0.3] * nearest)
    assert np.allclose(cluster_complexity(centroids[:1], np.array([0.4]), 20), [0.4])


def test_in_memory_filters_apply_in_order_and_prune_the_most_prototypical_first():
    rng = np.random.default_rng(1)
    centres = unit(rng.normal(size=(4, 16)))
    spread = np.array([0.05, 0.05, 0.6, 0.6])  # two tight clusters, two loose ones
    labels = np.repeat(np.arange(4), 250)
    image = unit(centres[labels] + rng.normal(size=(1000, 16)) * spread[labels, None])
    text = unit(image + rng.normal(size=(1000, 16)))
    uids = [f"{i:032x}" for i in range(1000)]
    config = ScoreFilterConfig(clip_score_top=0.8, density_prune=0.5, density_clusters=4, seed=0)
    result = score_filter(uids, image, text, config)
    assert (result.reason == LOW_CLIP_SCORE).sum() == 200
    assert result.kept.sum() == 400  # half of the 800 the CLIP score kept
    pruned_share = [np.mean(result.reason[labels == label] == PRUNED_DENSE) for label in range(4)]
    assert min(pruned_share[:2]) > max(pruned_share[2:])  # the tight clusters lose the most
    again = score_filter(uids, image, text, config)
    assert (again.reason == result.reason).all()


@pytest.mark.parametrize("settings, says", [
    ({"clip_score_top": 0}, "--clip-score-top is a fraction"), ({"density_prune": 1.2}, "--density-prune is a"),
    ({"clip_score_min": 2}, "--clip-score-min is a cosine"), ({"centroids": 0}, "--centroids must be at least 1"),
    ({"temperature": 0}, "--temperature must be positive")])
def test_settings_that_cannot_hold_are_refused_with_the_option_named(settings, says):
    with pytest.raises(UserInputError, match=says):
        ScoreFilterConfig(**settings)
