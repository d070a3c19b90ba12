"""How much of a caption pool a vocabulary covers: the figures MetaCLIP reports for its metadata.

    python -m pipeline.coverage --metadata metadata/vocab.txt.gz --pool POOL [--pool POOL2] [--mode default]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Iterable, Iterator

from pipeline.text import pool
from pipeline.text.ingest import IngestConfig, canonicalize
from pipeline.text.matching import MODES, Matcher


@dataclass(frozen=True)
class Coverage:
    captions: int
    matched: int  # captions with at least one matching entry
    matches: int  # (caption, entry) pairs

    @property
    def matched_fraction(self) -> float:
        return self.matched / self.captions if self.captions else 0.0

    @property
    def matches_per_caption(self) -> float:
        return self.matches / self.captions if self.captions else 0.0

    @property
    def matches_per_matched_caption(self) -> float:
        return self.matches / self.matched if self.matched else 0.0

    def describe(self) -> str:
        return (f"{self.captions:,} captions: {self.matched_fraction:.1%} match at least one entry; "
                f"{self.matches_per_caption:.2f} matches per caption, "
                f"{self.matches_per_matched_caption:.2f} per matched caption")


def coverage(matcher: Matcher, captions: Iterable[str]) -> Coverage:
    """Count captions, matched captions and matches of a matcher over captions."""
    total = matched = matches = 0
    for ids in matcher.match_batch(captions):
        total += 1
        matched += bool(ids)
        matches += len(ids)
    return Coverage(total, matched, matches)


def pool_captions(path: str) -> Iterator[str]:
    """The captions of a pool that ingest would accept (bad rows are not captions)."""
    units, columns = pool.resolve(path)
    for unit in units:
        for raw in pool.read_unit(unit, columns):
            good, _ = canonicalize(raw, IngestConfig(dedup_key="none"))
            yield from good.column("caption").to_pylist()


def main() -> None:
    from pipeline.errors import run_job
    from pipeline.vocab.entries import SHIPPED_VOCABULARY, load_entries

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metadata", default=str(SHIPPED_VOCABULARY))
    parser.add_argument("--pool", action="append", required=True, help="pool file or directory (repeatable)")
    parser.add_argument("--mode", choices=MODES, default="default")
    args = parser.parse_args()

    def report() -> None:
        matcher = Matcher(load_entries(args.metadata), args.mode)
        for path in args.pool:
            print(f"{path} ({args.mode}): {coverage(matcher, pool_captions(path)).describe()}")

    run_job(report)


if __name__ == "__main__":
    main()
