"""Bigrams with high pointwise mutual information in a caption corpus (MetaCLIP's third source).

Captions are tokenized with the matcher's default normalization, so a mined bigram is written the way
default-mode matching sees it. Only word tokens (with a letter, not the possessive 's) form bigrams: a
number, a punctuation mark or 's breaks the run, so "dog, cat" gives no bigram.

PMI(a b) = log2(p(a b) / (p(a) p(b))), with p(a b) = count(a b) / all bigrams and p(a) = count(a) / all
word tokens. Rare pairs get high PMI by chance, hence the minimum count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pyarrow as pa

from pipeline.text.matching import default_normalize

BIGRAM_SCHEMA = pa.schema([
    ("bigram", pa.string()),
    ("count", pa.int64()),
    ("left_count", pa.int64()),
    ("right_count", pa.int64()),
    ("pmi", pa.float64()),
])


@dataclass(frozen=True)
class BigramThresholds:
    min_count: int = 3
    min_pmi: float = 8.0


def _is_word(token: str) -> bool:
    return token != "'s" and any(char.isalpha() for char in token)


def word_runs(text: str) -> list[list[str]]:
    """Runs of consecutive word tokens of a caption (default-mode normalized)."""
    runs: list[list[str]] = [[]]
    for token in default_normalize(text).split():
        if _is_word(token):
            runs[-1].append(token)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


@dataclass
class NgramCounts:
    """Word and adjacent word-pair counts of some captions; partial counts add up."""

    unigrams: Counter
    bigrams: Counter

    def add_caption(self, text: str) -> None:
        for run in word_runs(text):
            self.unigrams.update(run)
            self.bigrams.update(zip(run, run[1:]))

    @classmethod
    def of(cls, captions: Iterable[str]) -> "NgramCounts":
        counts = cls(Counter(), Counter())
        for text in captions:
            counts.add_caption(text)
        return counts


def sort_bigrams(table: pa.Table) -> pa.Table:
    """Highest PMI first, then most frequent, then alphabetical: a total order, so builds are stable."""
    return table.sort_by([("pmi", "descending"), ("count", "descending"), ("bigram", "ascending")])


def score_candidates(candidates: pa.Table, total_words: int, total_bigrams: int,
                     thresholds: BigramThresholds) -> pa.Table:
    """PMI of candidate bigrams (columns bigram, count, left_count, right_count); those passing both
    thresholds, in the order of sort_bigrams."""
    count = candidates.column("count").to_numpy().astype(np.float64)
    left = candidates.column("left_count").to_numpy().astype(np.float64)
    right = candidates.column("right_count").to_numpy().astype(np.float64)
    with np.errstate(divide="ignore"):
        scores = np.log2(count / total_bigrams) - np.log2(left / total_words) - np.log2(right / total_words)
    passing = (count >= thresholds.min_count) & (scores >= thresholds.min_pmi)
    scored = candidates.select(BIGRAM_SCHEMA.names[:-1]).append_column("pmi", pa.array(scores))
    return sort_bigrams(scored.filter(pa.array(passing)).cast(BIGRAM_SCHEMA))


def candidate_table(counts: NgramCounts, min_count: int) -> pa.Table:
    """Bigrams seen at least min_count times, with the counts of their two words."""
    rows = [(f"{left} {right}", count, counts.unigrams[left], counts.unigrams[right])
            for (left, right), count in counts.bigrams.items() if count >= min_count]
    columns = list(zip(*rows)) if rows else [()] * 4
    return pa.table({name: pa.array(column, type=BIGRAM_SCHEMA.field(name).type)
                     for name, column in zip(BIGRAM_SCHEMA.names[:-1], columns)})


def score_bigrams(counts: NgramCounts, thresholds: BigramThresholds) -> pa.Table:
    """The mined bigrams of counts made in one process (the Spark job aggregates partial counts first)."""
    return score_candidates(candidate_table(counts, thresholds.min_count), sum(counts.unigrams.values()),
                            sum(counts.bigrams.values()), thresholds)
