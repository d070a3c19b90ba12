"""Worldwide curation (MetaCLIP 2): each caption matched against its own language's vocabulary only, and each
language balanced with its own t.

The t rule is MetaCLIP 2's: `t` is English's; for every other language, t is chosen so that the share of its
matches falling in tail entries (count <= t) equals English's share at English's t. A language's share moves in
steps as t passes its entries' counts, so the nearest share its counts allow is taken and both are recorded.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.errors import UserInputError
from pipeline.text.matching import Matcher
from pipeline.text.vocabulary import ENGLISH, Vocabulary


class WorldwideMatcher:
    """Matches each caption against the vocabulary of its language (global ids); a caption in a language with no
    vocabulary gets None. A language's automaton is built when its first caption comes, once per matcher."""

    def __init__(self, vocabulary: Vocabulary, mode: str):
        self.vocabulary, self.mode = vocabulary, mode
        self._starts = vocabulary.start_of()
        self._blocks = dict(zip(vocabulary.languages, vocabulary.blocks()))
        self._matchers: dict[str, Matcher] = {}

    @property
    def built(self) -> list[str]:
        """The languages whose automaton this matcher holds."""
        return sorted(self._matchers)

    def _matcher(self, language: str) -> Matcher:
        if language not in self._matchers:
            self._matchers[language] = Matcher(self._blocks[language], self.mode, language)
        return self._matchers[language]

    def match_batch(self, captions: Sequence[str], languages: Sequence[str | None]) -> list[list[int] | None]:
        positions_by_language: dict[str, list[int]] = defaultdict(list)
        for position, language in enumerate(languages):
            if language in self._starts:
                positions_by_language[language].append(position)
        if len(positions_by_language) == 1 and len(next(iter(positions_by_language.values()))) == len(captions):
            language = next(iter(positions_by_language))  # one language in the batch: no regrouping
            found, start = self._matcher(language).match_batch(captions), self._starts[language]
            return [[start + entry_id for entry_id in ids] for ids in found] if start else found
        results: list[list[int] | None] = [None] * len(captions)
        for language, positions in positions_by_language.items():
            start = self._starts[language]
            found = self._matcher(language).match_batch([captions[position] for position in positions])
            for position, ids in zip(positions, found):
                results[position] = [start + entry_id for entry_id in ids] if start else ids
        return results


def tail_share(counts: np.ndarray, t: float) -> float:
    """The share of matches that fall in tail entries (count <= t)."""
    total = counts.sum()
    return float(counts[counts <= t].sum() / total) if total else 0.0


def t_for_tail_share(counts: np.ndarray, share: float) -> tuple[float, float]:
    """(t, its tail share): the entry count whose tail share is nearest `share` (the smaller t on a tie)."""
    values, entries = np.unique(counts[counts > 0], return_counts=True)
    if len(values) == 0:
        raise ValueError("no matches: no t to choose")
    matches_at_or_below = np.cumsum(values * entries)
    shares = matches_at_or_below / matches_at_or_below[-1]
    nearest = int(np.argmin(np.abs(shares - share)))
    return float(values[nearest]), float(shares[nearest])


@dataclass(frozen=True)
class LanguageThreshold:
    language: str
    t: float
    tail_share: float  # at this t
    target_tail_share: float | None  # English's, which a derived t aims at; None when t was given
    how: str  # "given" (English's t, or --t-per-language), "derived" (the tail-share rule)


@dataclass(frozen=True)
class EntryLanguages:
    """Each entry's language, as an index into `names`: a language's entries are found by comparing integers,
    which balancing does for every language at every step of solving t."""

    names: tuple[str, ...]
    codes: np.ndarray

    @classmethod
    def of(cls, languages) -> EntryLanguages:
        names, codes = np.unique(np.asarray(languages, dtype=str), return_inverse=True)
        return cls(tuple(names), codes)


def language_thresholds(counts: np.ndarray, entry_languages: EntryLanguages, english_t: float,
                        given: dict[str, float] | None = None) -> dict[str, LanguageThreshold]:
    """A t for every language with matches: English's, a given one, or the one the tail-share rule derives."""
    given = dict(given or {})
    by_language = {language: counts[entry_languages.codes == code]
                   for code, language in enumerate(entry_languages.names)}
    english = by_language.get(ENGLISH)
    target = tail_share(english, english_t) if english is not None and english.sum() else None
    thresholds = {}
    for language, language_counts in sorted(by_language.items()):
        if not language_counts.sum():
            continue
        if language == ENGLISH or language in given:
            t = english_t if language == ENGLISH else given[language]
            thresholds[language] = LanguageThreshold(language, float(t), tail_share(language_counts, t), None, "given")
            continue
        if target is None:
            raise UserInputError(f"no English caption matched, so there is no English tail share to derive "
                                 f"{language}'s t from; give it with --t-per-language")
        t, share = t_for_tail_share(language_counts, target)
        thresholds[language] = LanguageThreshold(language, t, share, target, "derived")
    return thresholds


def entry_thresholds(entry_languages: EntryLanguages, thresholds: dict[str, LanguageThreshold]) -> np.ndarray:
    """Each entry's t (0 for a language without matches: its entries have no count to cap)."""
    by_code = np.array([thresholds[name].t if name in thresholds else 0.0 for name in entry_languages.names])
    return by_code[entry_languages.codes]
