"""Build a metadata vocabulary from open sources (WordNet lemma names, frequent English words).

This is the vocabulary the repo ships until the full 500k build lands; it is a real vocabulary, so
tests and benchmarks exercise the matcher on real words.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterable

from pipeline.errors import UserInputError

WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_POS = ("noun", "verb", "adj", "adv")


def wordnet_lemmas(wordnet_dir: Path = WORDNET_DIR) -> list[str]:
    """Lemma names from WordNet's index files, underscores as spaces, in file order per POS."""
    lemmas: list[str] = []
    for pos in WORDNET_POS:
        index = Path(wordnet_dir) / f"index.{pos}"
        if not index.is_file():
            raise UserInputError(
                f"{index}: WordNet index not found (install Debian's wordnet-base or pass --wordnet-dir)"
            )
        with index.open(encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(" "):
                    continue  # licence header
                lemmas.append(line.split(" ", 1)[0].replace("_", " "))
    return lemmas


def frequent_words(count: int) -> list[str]:
    """The `count` most frequent English words according to wordfreq's large list."""
    from wordfreq import top_n_list

    return top_n_list("en", count, wordlist="large")


def merge_sources(*sources: Iterable[str], limit: int | None = None) -> list[str]:
    """Union of the sources in order, first occurrence wins, blank entries dropped."""
    seen: set[str] = set()
    merged: list[str] = []
    for source in sources:
        for entry in source:
            entry = entry.strip()
            if entry and entry not in seen:
                seen.add(entry)
                merged.append(entry)
                if limit is not None and len(merged) == limit:
                    return merged
    return merged


def write_entries(entries: list[str], path: Path) -> None:
    """One entry per line, gzip with a fixed mtime so the same entries give the same bytes."""
    payload = "".join(f"{entry}\n" for entry in entries).encode("utf-8")
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(payload)


def main() -> None:
    """Rebuild the shipped interim vocabulary: WordNet lemma names, then wordfreq's English words."""
    import argparse

    from pipeline.cli import run_job

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", default="metadata/vocab_interim.txt.gz")
    parser.add_argument("--wordnet-dir", default=str(WORDNET_DIR))
    parser.add_argument("--words", type=int, default=1_000_000, help="how many wordfreq words to consider")
    args = parser.parse_args()

    def build() -> None:
        entries = merge_sources(wordnet_lemmas(Path(args.wordnet_dir)), frequent_words(args.words))
        write_entries(entries, Path(args.out))
        print(f"{args.out}: {len(entries):,} entries")

    run_job(build)


if __name__ == "__main__":
    main()
