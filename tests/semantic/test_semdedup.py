"""SemDeDup on in-memory embeddings: against brute force, several eps, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import UserInputError
from pipeline.semantic.semdedup import chosen_eps, semdedup
from tests.helpers import planted


def brute_force_removed(vectors: np.ndarray, cluster: np.ndarray, centroids: np.ndarray, eps: float) -> set[int]:
    """The greedy rule written plainly: per cluster, nearest-to-centroid first, removed when close to a kept one."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    removed = set()
    for label in np.unique(cluster):
        members = np.flatnonzero(cluster == label)
        order = members[np.argsort(-(unit[members] @ centroids[label]), kind="stable")]
        kept: list[int] = []
        for index in order:
            if kept and float(np.max(unit[kept] @ unit[index])) > 1 - eps:
                removed.add(int(index))
            else:
                kept.append(int(index))
    return removed


def test_removed_set_equals_brute_force_within_clusters_and_recall_is_high():
    vectors, uids, sources = planted()
    result = semdedup(vectors, uids, eps=0.05, clusters=20, seed=0)
    rows = result.table.to_pydict()
    cluster = np.array(rows["cluster"])
    removed = {index for index, status in enumerate(rows["status"]) if status == "removed"}
    assert removed == brute_force_removed(vectors, cluster, result.centroids, 0.05)
    # recall against unrestricted all-pairs: every planted copy whose pair is above the threshold
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    copy_ids = np.arange(len(vectors) - len(sources), len(vectors))
    pair_similarity = np.sum(unit[copy_ids] * unit[sources], axis=1)
    true_pairs = {(int(source), int(copy)) for source, copy, sim in zip(sources, copy_ids, pair_similarity)
                  if sim > 0.95}
    found = {(source, copy) for source, copy in true_pairs if copy in removed or source in removed}
    recall = len(found) / len(true_pairs)
    print(f"recall of planted pairs against all-pairs: {recall:.3f} ({len(found)}/{len(true_pairs)})")
    # random vectors have no cluster structure, so a pair straddles a cluster border more often than in real
    # embeddings: about 94% here with 20 clusters
    assert len(true_pairs) > 1500 and recall > 0.9
    assert result.sizes[0.05] == len(vectors) - len(removed)
    for index in list(removed)[:50]:
        partner = uids.index(rows["duplicate_of"][index])
        assert rows["status"][partner] == "kept" and rows["cluster"][partner] == rows["cluster"][index]
        assert rows["similarity"][index] == pytest.approx(float(unit[index] @ unit[partner]), abs=1e-5)


def test_several_eps_share_the_clustering_and_grow_monotonically():
    vectors, uids, _ = planted(count=4000, copies=400)
    result = semdedup(vectors, uids, eps=[0.01, 0.05, 0.2], clusters=8, seed=1)
    assert set(result.sizes) == {0.01, 0.05, 0.2}
    assert result.sizes[0.01] >= result.sizes[0.05] >= result.sizes[0.2]
    assert result.table.num_rows == 3 * len(uids)
    again = semdedup(vectors, uids, eps=[0.01, 0.05, 0.2], clusters=8, seed=1)
    assert again.table.equals(result.table)  # seeded: the same run gives the same table


@pytest.mark.parametrize("change, message", [
    (lambda v: v.__setitem__((3, 0), np.nan), "NaN, infinite or zero .*uid u00003"),
    (lambda v: v.__setitem__(5, 0.0), "uid u00005"),
])
def test_bad_embeddings_name_the_uid(change, message):
    vectors, uids, _ = planted(count=200, copies=20)
    change(vectors)
    with pytest.raises(UserInputError, match=message):
        semdedup(vectors, uids, eps=0.05, clusters=4)


def test_more_clusters_than_samples_and_bad_eps_are_clear_errors():
    vectors, uids, _ = planted(count=50, copies=5)
    with pytest.raises(UserInputError, match="between 1 and the number of samples"):
        semdedup(vectors, uids, eps=0.05, clusters=51)
    with pytest.raises(UserInputError, match="eps must be between 0 and 1"):
        semdedup(vectors, uids, eps=1.5, clusters=2)


def test_a_later_stage_applies_the_asked_eps_or_the_smallest_computed():
    assert chosen_eps([0.1, 0.02], None) == 0.02
    assert chosen_eps([0.1, 0.02], 0.1) == 0.1
    with pytest.raises(UserInputError, match=r"--eps 0.05 is not one of the dedup stage's eps \(0.02, 0.1\)"):
        chosen_eps([0.1, 0.02], 0.05)
    assert chosen_eps([], None) is None  # --eps auto found none: nothing is applied
    with pytest.raises(UserInputError, match="the dedup stage removed nothing"):
        chosen_eps([], 0.05)
