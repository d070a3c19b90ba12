"""The report's figures say what they plot: titles, the realised cap per head entry, whole-number group sizes."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.report import figures

COUNTS = pl.DataFrame({"entry_id": list(range(6)), "entry": list("abcdef"), "count": [500, 200, 90, 30, 5, 1],
                       "p": [0.08, 0.2, 0.44, 1, 1, 1], "selected": [120, 60, 50, 30, 5, 1]})


def test_balanced_counts_come_with_the_realised_cap_of_each_head_entry():
    ranked, realised = figures.entry_distribution(COUNTS, 40.0).axes
    assert ranked.get_title() == "samples per entry, entries ranked by matches in the pool"
    assert realised.get_title() == "realised cap per head entry (3 entries)"
    shares = realised.collections[0].get_offsets()
    assert np.allclose(np.asarray(shares), [[500, 120 / 500], [200, 60 / 200], [90, 50 / 90]])
    assert len(figures.entry_distribution(COUNTS, None).axes) == 1  # before balancing: no cap to show


def test_one_group_size_is_one_whole_number_on_the_axis():
    groups = pl.DataFrame({"uid": ["a", "b", "c"], "duplicate_of": ["x", "y", "z"], "kind": ["exact"] * 3,
                           "detail": [""] * 3, "group_size": [2, 2, 2]})
    axis = figures.cluster_sizes(groups).axes[0]
    figure_ticks = [tick for tick in axis.get_xticks() if axis.get_xlim()[0] <= tick <= axis.get_xlim()[1]]
    assert axis.get_xlim() == (1.0, 3.0) and all(float(tick).is_integer() for tick in figure_ticks)
    assert all(float(tick).is_integer() for tick in axis.get_yticks())
