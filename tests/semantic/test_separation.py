"""--eps auto's measurement: known duplicates against random distinct pairs, and the eps it picks."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.semantic.semdedup import normalized
from pipeline.semantic.separation import (
    AUTO_EPS,
    auto_eps,
    describe_choice,
    distinct_similarities,
    pair_similarities,
    separation_table,
)
from tests.helpers import planted


def test_shares_are_counted_against_each_threshold():
    duplicates = np.array([0.999, 0.97, 0.85])
    distinct = np.array([0.5, 0.96, 0.991, 0.2])
    table = separation_table(duplicates, distinct, [0.1, 0.02, 0.005], cluster_size=2)
    assert [row["eps"] for row in table] == [0.005, 0.02, 0.1]
    assert [row["duplicates_found"] for row in table] == [1, 1, 2]
    assert [row["distinct_merged"] for row in table] == [0, 1, 2]
    assert table[2]["duplicate_recall"] == pytest.approx(2 / 3) and table[2]["false_merge_rate"] == 0.5
    assert auto_eps(table, max_false_merge=0.3) == 0.02  # 1 of 4 merged: 25% is under 30%
    assert auto_eps(table, max_false_merge=0.25) == 0.005  # under, not at
    assert auto_eps(separation_table(duplicates, distinct[:1], [0.1], 2), 0.01) == 0.1  # nothing merges at 0.5


def test_a_small_pairwise_rate_still_wrecks_large_clusters():
    distinct = np.r_[np.full(3, 0.999), np.zeros(997)]  # 0.3% of distinct pairs merge at eps 0.01
    [row] = separation_table(np.zeros(0), distinct, [0.01], cluster_size=150)
    assert row["false_merge_rate"] == pytest.approx(0.003) and row["distinct_removed"] == pytest.approx(0.36, abs=0.01)
    assert auto_eps([row]) is None  # a third of every cluster would go
    [alone] = separation_table(np.zeros(0), distinct, [0.01], cluster_size=2)
    assert auto_eps([alone]) == 0.01


def test_a_good_embedder_gets_a_large_eps_that_finds_its_duplicates():
    vectors, uids, sources = planted(count=1_200, copies=200, dim=64)
    unit = normalized(vectors, uids)
    copies = unit[1_000:]
    table = separation_table(pair_similarities(copies, unit[sources]), distinct_similarities(unit[:1_000]), AUTO_EPS,
                             cluster_size=100)
    chosen = auto_eps(table)
    row = next(row for row in table if row["eps"] == chosen)
    assert chosen >= 0.05 and row["duplicate_recall"] == 1.0 and row["false_merge_rate"] < 0.01
    assert row["distinct_pairs"] == 1_000 * 999 // 2
    assert describe_choice(table, chosen).startswith(f"eps auto: {chosen:g} merges")


def test_an_embedder_that_puts_everything_together_gets_no_eps():
    rng = np.random.default_rng(0)
    alike = 1.0 + rng.normal(scale=0.003, size=(300, 32))  # every vector near the same direction
    unit = normalized(alike, [str(index) for index in range(300)])
    table = separation_table(np.ones(10), distinct_similarities(unit), AUTO_EPS, cluster_size=30)
    assert auto_eps(table) is None
    says = describe_choice(table, None)
    assert "\n" not in says and "no eps keeps false merges under 1%" in says and "removes nothing" in says


def test_too_few_images_to_measure_picks_nothing():
    table = separation_table(np.zeros(0), distinct_similarities(np.ones((1, 4)) / 2), AUTO_EPS, cluster_size=1)
    assert table[0]["distinct_pairs"] == 0 and table[0]["duplicate_recall"] is None
    assert auto_eps(table) is None and "fewer than two distinct images" in describe_choice(table, None)
