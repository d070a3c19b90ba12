"""Build the metadata vocabulary from open sources, MetaCLIP-style, with a provenance row per entry.

Sources are taken in priority order (WordNet lemma names, wordfreq unigrams, mined bigrams, extra
lists); an entry keeps the position of the first source that offers it, and the provenance table
lists every source that offered it. Entries are compared by their default-mode matching key, so
"Dog" and "dog" are one entry (the first spelling wins) and no two entries match the same text.

    python -m pipeline.vocabulary --bigrams runs/metadata/bigrams --extra my_terms.txt
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UserInputError
from pipeline.text.matching import default_normalize
from pipeline.vocab.sources import Source, extra_lists, find_wordnet, mined_bigrams, wordfreq_unigrams, wordnet_lemmas

MAX_ENTRY_CHARS = 256
DEFAULT_TOTAL = 500_000
SOURCE_SIZES = ("wordnet", "unigram", "bigram", "extra")


@dataclass
class SourceReport:
    offered: int = 0
    added: int = 0
    skipped: Counter = field(default_factory=Counter)


@dataclass
class Vocabulary:
    """Entries in id order, each entry's statistics by source, and what each source contributed."""

    entries: list[str]
    provenance: list[dict[str, tuple]]
    sources: list[Source]
    reports: dict[str, SourceReport]


def _skip_reason(entry: str, key: str, taken: dict[str, int]) -> str | None:
    if not key:
        return "empty"
    if len(entry) > MAX_ENTRY_CHARS:
        return "too_long"
    if key in taken:
        return "duplicate"
    if key.endswith(" 's") and key[:-3] in taken:
        return "possessive"  # "dog's" already matches through "dog" in default mode
    return None


def build_vocabulary(sources: list[Source], total: int = DEFAULT_TOTAL) -> Vocabulary:
    """Merge the sources in order up to `total` entries, each source up to its own limit."""
    entries: list[str] = []
    provenance: list[dict[str, tuple]] = []
    taken: dict[str, int] = {}  # matching key -> entry id
    reports = {source.name: SourceReport() for source in sources}
    for source in sources:
        report = reports[source.name]
        for raw, statistics in source.candidates:
            report.offered += 1
            entry = " ".join(raw.split())
            key = default_normalize(entry)
            reason = _skip_reason(entry, key, taken)
            if reason == "duplicate":
                provenance[taken[key]].setdefault(source.name, statistics)
            elif reason is None and (len(entries) >= total or report.added == source.limit):
                reason = "over_size"
            if reason is not None:
                report.skipped[reason] += 1
                continue
            taken[key] = len(entries)
            entries.append(entry)
            provenance.append({source.name: statistics})
            report.added += 1
    if not entries:
        raise UserInputError("the sources gave no entries")
    return Vocabulary(entries, provenance, sources, reports)


def _gzip_write(path: Path, lines: list[str]) -> None:
    """Lines into a gzip file with a fixed mtime and no name, so the same lines give the same bytes."""
    payload = "".join(f"{line}\n" for line in lines).encode("utf-8")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(f"{path}.tmp")
    with open(temporary, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
        packed.write(payload)
    temporary.replace(path)


def write_entries(entries: list[str], path: Path) -> None:
    """The vocabulary file: one entry per line, entry id = line number - 1."""
    _gzip_write(path, entries)


def _cell(value) -> str:
    return "" if value is None else str(value)


def write_provenance(vocabulary: Vocabulary, path: Path) -> None:
    """A TSV (gzip): entry id, entry, the sources that offered it, then each source's statistics."""
    header = ["entry_id", "entry", "sources"] + [
        f"{source.name}_{statistic}" for source in vocabulary.sources for statistic in source.statistics]
    lines = ["\t".join(header)]
    for entry_id, (entry, by_source) in enumerate(zip(vocabulary.entries, vocabulary.provenance)):
        cells = [str(entry_id), entry, ",".join(source.name for source in vocabulary.sources
                                                if source.name in by_source)]
        for source in vocabulary.sources:
            values = by_source.get(source.name, (None,) * len(source.statistics))
            cells.extend(_cell(value) for value in values)
        lines.append("\t".join(cells))
    _gzip_write(path, lines)


def build_report(vocabulary: Vocabulary, parameters: dict) -> dict:
    """What each source offered and gave, and why the rest was skipped: the data card's numbers."""
    return {
        "entries": len(vocabulary.entries),
        "parameters": parameters,
        "sources": {name: {"offered": report.offered, "added": report.added,
                           "skipped": dict(sorted(report.skipped.items()))}
                    for name, report in vocabulary.reports.items()},
    }


def _limit(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise UserInputError("source sizes must be 0 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wordnet", help="WordNet 3.0 dict folder or nltk wordnet zip "
                                          "(default: /usr/share/wordnet, then nltk_data)")
    parser.add_argument("--bigrams", help="output folder of jobs/mine_bigrams.py (default: no bigrams)")
    parser.add_argument("--extra", action="append", default=[], help="a list of entries, one per line (repeatable)")
    parser.add_argument("--total", type=int, default=DEFAULT_TOTAL, help="entries in all (default 500000)")
    for name in SOURCE_SIZES:
        parser.add_argument(f"--{name}-size", type=int, help=f"most entries taken from the {name} source")
    parser.add_argument("--out", default="metadata/vocab.txt.gz")
    parser.add_argument("--provenance", default="metadata/provenance.tsv.gz")
    parser.add_argument("--report", default="metadata/vocab_build.json")
    return parser


def main() -> None:
    from importlib.metadata import version

    from pipeline.errors import run_job

    args = _parser().parse_args()

    def build() -> None:
        sources = [wordnet_lemmas(find_wordnet(args.wordnet), _limit(args.wordnet_size)),
                   wordfreq_unigrams(_limit(args.unigram_size))]
        if args.bigrams:
            sources.append(mined_bigrams(Path(args.bigrams), _limit(args.bigram_size)))
        if args.extra:
            sources.append(extra_lists([Path(path) for path in args.extra], _limit(args.extra_size)))
        vocabulary = build_vocabulary(sources, args.total)
        write_entries(vocabulary.entries, Path(args.out))
        write_provenance(vocabulary, Path(args.provenance))
        sizes = {f"{name}_size": getattr(args, f"{name}_size") for name in SOURCE_SIZES}
        parameters = {"total": args.total, "wordfreq": version("wordfreq"),
                      "extra": [Path(path).name for path in args.extra], **sizes}
        report = build_report(vocabulary, parameters)
        Path(args.report).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"{args.out}: {len(vocabulary.entries):,} entries; " + ", ".join(
            f"{name} {item['added']:,}" for name, item in report["sources"].items()))

    run_job(build)


if __name__ == "__main__":
    main()
