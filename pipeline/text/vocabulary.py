"""The vocabulary a run matches against: one list of entries for every caption, or one list per language.

Entry ids are global positions. In worldwide mode (MetaCLIP 2) English's entries come first, with the ids they
have in English-only curation, so an English pool is curated exactly as before; each other language's block
follows, in the order of the language codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline import REPO
from pipeline.errors import UserInputError
from pipeline.vocab.entries import entries_fingerprint, load_entries

ENGLISH = "en"
WORLDWIDE_METADATA = REPO / "metadata" / "worldwide"  # <language>.txt.gz per language (metadata/worldwide/README)
VOCABULARY_SUFFIX = ".txt.gz"


@dataclass(frozen=True)
class Vocabulary:
    entries: list[str]
    languages: tuple[str, ...] = ()  # worldwide: each block's language, English first; empty: one block for all
    starts: tuple[int, ...] = ()  # worldwide: where each language's block starts
    fingerprint: str = field(init=False)

    def __post_init__(self):
        tagged = self.entries if not self.languages else [
            f"{language}\t{entry}" for language, block in zip(self.languages, self.blocks()) for entry in block]
        object.__setattr__(self, "fingerprint", entries_fingerprint(tagged))

    @property
    def worldwide(self) -> bool:
        return bool(self.languages)

    def blocks(self) -> list[list[str]]:
        ends = (*self.starts[1:], len(self.entries))
        return [self.entries[start:end] for start, end in zip(self.starts, ends)]

    def start_of(self) -> dict[str, int]:
        return dict(zip(self.languages, self.starts))

    def entry_languages(self) -> np.ndarray | None:
        """Each entry's language (worldwide), else None."""
        if not self.worldwide:
            return None
        sizes = np.diff([*self.starts, len(self.entries)])
        return np.repeat(np.array(self.languages, dtype=object), sizes)


def worldwide_vocabulary(blocks: dict[str, list[str]]) -> Vocabulary:
    """Per-language entry lists as one worldwide vocabulary; English first, then the others by code."""
    if ENGLISH not in blocks:
        raise UserInputError("a worldwide vocabulary needs an English block: its t sets every other language's")
    languages = (ENGLISH, *sorted(language for language in blocks if language != ENGLISH))
    entries, starts = [], []
    for language in languages:
        starts.append(len(entries))
        entries.extend(blocks[language])
    return Vocabulary(entries, languages, tuple(starts))


def load_vocabulary(metadata: str | Path, worldwide: str | Path | None = None) -> Vocabulary:
    """The vocabulary in `metadata`; with `worldwide` (a folder of <language>.txt.gz files), that one is
    English's and the folder's files are the other languages'."""
    english = load_entries(metadata)
    if worldwide is None:
        return Vocabulary(english)
    folder = Path(worldwide)
    files = sorted(folder.glob(f"*{VOCABULARY_SUFFIX}")) if folder.is_dir() else []
    if not files:
        raise UserInputError(f"{folder}: no per-language vocabularies (<language>{VOCABULARY_SUFFIX}) here; "
                             f"make metadata-worldwide builds them")
    blocks = {ENGLISH: english}
    for path in files:
        language = path.name.removesuffix(VOCABULARY_SUFFIX)
        if language == ENGLISH:
            raise UserInputError(f"{path}: English's vocabulary is --metadata, not a file of the worldwide folder")
        blocks[language] = load_entries(path)
    return worldwide_vocabulary(blocks)
