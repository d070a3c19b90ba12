"""Balancing statistics on real match lists (real captions against the shipped vocabulary)."""

import numpy as np
import pytest

from pipeline.hashing import content_uid
from pipeline.text.balancing import entry_probabilities, expected_size, keep, keep_mask, keep_probabilities, solve_t
from pipeline.text.counting import count_entries
from pipeline.text.matching import Matcher


@pytest.fixture(scope="module")
def pool(captions, entries):
    matched = Matcher(entries, mode="default").match_batch(captions)
    uids = [content_uid(str(i).encode(), text.encode()) for i, text in enumerate(captions)]
    return uids, matched, count_entries(matched, len(entries))


def test_probabilities_cap_at_one_and_zero_for_unmatched():
    assert entry_probabilities([0, 5, 10, 40], 10).tolist() == [0.0, 1.0, 1.0, 0.25]


def test_keep_is_a_pure_function_of_seed_uid_and_entries():
    probs = np.array([0.5, 0.5, 0.01])
    uid = content_uid(b"http://x", b"a dog")
    assert keep(uid, [0, 1], probs, seed=3) == keep(uid, [0, 1], probs, seed=3)
    decisions = {keep(content_uid(str(i).encode(), b"c"), [0], probs, seed=3) for i in range(200)}
    assert decisions == {True, False}


def test_tail_entries_keep_every_sample(pool):
    uids, matched, counts = pool
    t = 50
    kept = keep_mask(uids, matched, entry_probabilities(counts, t), seed=0)
    kept_counts = count_entries([ids for ids, k in zip(matched, kept) if k], len(counts))
    tail = (counts > 0) & (counts <= t)
    assert tail.sum() > 1000
    assert np.array_equal(kept_counts[tail], counts[tail])
    head = counts > 20 * t
    assert (kept_counts[head] < counts[head]).all()  # the head is cut


def test_unmatched_samples_are_dropped(pool):
    uids, matched, counts = pool
    kept = keep_mask(uids, matched, entry_probabilities(counts, 1e9), seed=0)
    assert kept.tolist() == [bool(ids) for ids in matched]


def test_expected_size_matches_realised_size_within_three_sigma(pool):
    uids, matched, counts = pool
    for t in (20, 100, 500):
        probs = entry_probabilities(counts, t)
        p = keep_probabilities(matched, probs)
        sigma = np.sqrt((p * (1 - p)).sum())
        for seed in range(3):
            realised = keep_mask(uids, matched, probs, seed).sum()
            assert abs(realised - p.sum()) < 3 * sigma, (t, seed, realised, p.sum(), sigma)
        assert expected_size(matched, counts, t) == pytest.approx(p.sum())


def test_different_seeds_select_differently(pool):
    uids, matched, counts = pool
    probs = entry_probabilities(counts, 50)
    assert not np.array_equal(keep_mask(uids, matched, probs, 0), keep_mask(uids, matched, probs, 1))


def test_solve_t_hits_the_target_size(pool):
    uids, matched, counts = pool
    for target in (5_000, 12_000):
        t = solve_t(matched, counts, target)
        assert expected_size(matched, counts, t) == pytest.approx(target, rel=1e-3)
        realised = keep_mask(uids, matched, entry_probabilities(counts, t), seed=0).sum()
        assert abs(realised - target) <= 0.01 * target


def test_keep_probability_is_one_minus_product_of_misses():
    probs = np.array([0.5, 0.2, 1.0])
    assert keep_probabilities([[0, 1], [2], []], probs).tolist() == pytest.approx([0.6, 1.0, 0.0])
