"""Build the per-language vocabularies of worldwide curation (metadata/worldwide/<language>.txt.gz).

Each language's vocabulary merges, in priority order, wordfreq's word list of that language (most frequent
first, segmented for Chinese and Japanese; Thai's from pythainlp's Thai National Corpus frequencies), bigrams mined
from captions in the language (by PMI, as for English) and the user's lists for it (EXTRA_<language>), by the same
rules as the English vocabulary (pipeline.vocab.build: one entry per matching key, the first spelling wins).
English is not built here: its vocabulary is the shipped 500k one.

    python -m pipeline.vocab.worldwide [--size 20000] [--captions de=captions_de.txt.gz ...]
        [--extra de=terms_de.txt ...] [--out metadata/worldwide]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.errors import UserInputError
from pipeline.text.matching import SPACELESS_LANGUAGES
from pipeline.text.vocabulary import ENGLISH, VOCABULARY_SUFFIX, WORLDWIDE_METADATA
from pipeline.vocab.bigrams import BigramThresholds
from pipeline.vocab.build import build_report, build_vocabulary, write_entries
from pipeline.vocab.sources import caption_bigrams, extra_lists, thai_words, wordfreq_unigrams

DEFAULT_SIZE = 20_000  # entries per language from wordfreq; a user's extra list adds to it
# Where wordfreq and the language identifier (lid.176) name a language differently, the file takes the name the
# identifier gives captions; Serbo-Croatian's list serves each of the codes lid.176 splits it into.
LANGID_CODES = {"fil": ("tl",), "nb": ("no",), "sh": ("hr", "bs", "sr")}


THAI = "th"  # not in wordfreq: its words come from pythainlp (the `vocab` extra)


def worldwide_languages() -> list[str]:
    """Every language wordfreq has a list for, English aside, and Thai."""
    from wordfreq import available_languages

    return sorted({*available_languages(), THAI} - {ENGLISH})


def build_language(language: str, size: int, captions: list[Path], extra: list[Path],
                   thresholds: BigramThresholds = BigramThresholds()):
    """The `size` most frequent words of the language (wordfreq's; Thai's from pythainlp), then the bigrams mined
    from its captions, then the extra lists whole."""
    if captions and language in SPACELESS_LANGUAGES:
        raise UserInputError(f"{language}: bigrams are mined between space-separated words, which {language} "
                             f"captions do not have; leave out --captions {language}=...")
    frequent = thai_words if language == THAI else lambda limit: wordfreq_unigrams(limit, language)
    sources = [frequent(size)] if language in worldwide_languages() else []
    if captions:
        sources.append(caption_bigrams(captions, thresholds))
    if extra:
        sources.append(extra_lists(extra))
    if not sources:
        raise UserInputError(f"{language}: no word list for it here; give its entries with --extra")
    return build_vocabulary(sources, total=sum(len(source.candidates) for source in sources))


def _by_language(option: str, pairs: list[str]) -> dict[str, list[Path]]:
    """LANGUAGE=FILE pairs by language, a language named as lid.176 names it taken as wordfreq's name."""
    found: dict[str, list[Path]] = {}
    for pair in pairs:
        language, separator, path = pair.partition("=")
        if not separator or not language or not path:
            raise UserInputError(f"{option} {pair!r}: give LANGUAGE=FILE")
        wordfreq_name = next((name for name, codes in LANGID_CODES.items() if language in codes), language)
        found.setdefault(wordfreq_name, []).append(Path(path))
    return found


def main() -> None:
    from importlib.metadata import version

    from pipeline.errors import run_job

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"wordfreq entries per language "
                                                                       f"(default {DEFAULT_SIZE})")
    parser.add_argument("--captions", action="append", default=[], metavar="LANGUAGE=FILE",
                        help="captions in a language, one a line (gzip or not), to mine bigrams from (repeatable)")
    thresholds = BigramThresholds()
    parser.add_argument("--min-count", type=int, default=thresholds.min_count,
                        help=f"times a mined bigram must occur (default {thresholds.min_count})")
    parser.add_argument("--min-pmi", type=float, default=thresholds.min_pmi,
                        help=f"least log2 PMI of a mined bigram (default {thresholds.min_pmi:g})")
    parser.add_argument("--extra", action="append", default=[], metavar="LANGUAGE=FILE",
                        help="a list of entries for a language, one per line (repeatable)")
    parser.add_argument("--out", default=str(WORLDWIDE_METADATA))
    args = parser.parse_args()

    def build() -> None:
        if args.size <= 0:
            raise UserInputError("--size must be positive")
        extras, captions, out = _by_language("--extra", args.extra), _by_language("--captions", args.captions), \
            Path(args.out)
        thresholds = BigramThresholds(args.min_count, args.min_pmi)
        reports = {}
        for language in sorted(set(worldwide_languages()) | set(extras) | set(captions)):
            vocabulary = build_language(language, args.size, captions.get(language, []), extras.get(language, []),
                                        thresholds)
            for code in LANGID_CODES.get(language, (language,)):
                write_entries(vocabulary.entries, out / f"{code}{VOCABULARY_SUFFIX}")
                reports[code] = build_report(vocabulary, {
                    "size": args.size, "wordfreq_language": language, "min_count": args.min_count,
                    "min_pmi": args.min_pmi, "captions": [path.name for path in captions.get(language, [])],
                    "extra": [path.name for path in extras.get(language, [])]})
        summary = {"wordfreq": version("wordfreq"), "languages": reports}
        (out / "build.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"{out}: {len(reports)} languages, " + ", ".join(
            f"{language} {report['entries']:,}" for language, report in reports.items()))

    run_job(build)


if __name__ == "__main__":
    main()
