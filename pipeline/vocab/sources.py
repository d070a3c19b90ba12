"""Readers of the vocabulary's open sources; each yields (entry, statistics) in its priority order.

Every reader turns a missing or unusable input into a UserInputError that names it.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import UserInputError
from pipeline.vocab.bigrams import BigramThresholds, sort_bigrams

WORDNET_POS = ("noun", "verb", "adj", "adv")
DEBIAN_WORDNET = Path("/usr/share/wordnet")


@dataclass(frozen=True)
class Source:
    """Entries offered by one source, best first, each with the values of the source's statistics."""

    name: str
    statistics: tuple[str, ...]
    candidates: list[tuple[str, tuple]]
    limit: int | None = None


def _nltk_wordnet_locations() -> list[Path]:
    roots = [Path(root) for root in os.environ.get("NLTK_DATA", "").split(os.pathsep) if root]
    roots.append(Path.home() / "nltk_data")
    return [root / "corpora" / name for root in roots for name in ("wordnet", "wordnet.zip")]


def find_wordnet(location: str | Path | None = None) -> Path:
    """The WordNet 3.0 database: the given folder or nltk zip, else Debian's, else nltk's data."""
    if location is not None:
        candidates = [Path(location)]
    else:
        candidates = [DEBIAN_WORDNET, *_nltk_wordnet_locations()]
    for candidate in candidates:
        if candidate.is_dir() or (candidate.is_file() and zipfile.is_zipfile(candidate)):
            return candidate
    tried = ", ".join(str(candidate) for candidate in candidates)
    raise UserInputError(f"WordNet not found (tried {tried}): install Debian's wordnet-base, "
                         "or nltk's wordnet corpus, or pass --wordnet")


def _index_lines(wordnet: Path, pos: str) -> list[str]:
    name = f"index.{pos}"
    if wordnet.is_dir():
        path = wordnet / name
        if not path.is_file():
            raise UserInputError(f"{path}: WordNet index not found (is {wordnet} a WordNet 3.0 dict folder?)")
        return path.read_text(encoding="utf-8").splitlines()
    with zipfile.ZipFile(wordnet) as archive:
        members = [member for member in archive.namelist() if member.rsplit("/", 1)[-1] == name]
        if not members:
            raise UserInputError(f"{wordnet}: no {name} in this zip (is it nltk's wordnet corpus?)")
        return archive.read(members[0]).decode("utf-8").splitlines()


def wordnet_lemmas(wordnet: Path, limit: int | None = None) -> Source:
    """Lemma names of all parts of speech (underscores as spaces), with their number of senses."""
    senses: dict[str, int] = {}
    for pos in WORDNET_POS:
        for number, line in enumerate(_index_lines(wordnet, pos), start=1):
            if line.startswith(" "):
                continue  # licence header
            fields = line.split(" ")
            if len(fields) < 4 or not fields[2].isdigit():
                raise UserInputError(f"{wordnet}: index.{pos} line {number} is not a WordNet index line")
            lemma = fields[0].replace("_", " ")
            senses[lemma] = senses.get(lemma, 0) + int(fields[2])
    return Source("wordnet", ("senses",), [(lemma, (count,)) for lemma, count in senses.items()], limit)


def wordfreq_unigrams(limit: int | None = None, language: str = "en") -> Source:
    """wordfreq's best list of the language (its large one where it has one), most frequent first, with each
    word's Zipf frequency. Chinese and Japanese come segmented (wordfreq split its sources with jieba and MeCab)."""
    from wordfreq import get_frequency_dict

    ranked = sorted(get_frequency_dict(language, wordlist="best").items(), key=lambda item: (-item[1], item[0]))
    return Source("wordfreq", ("zipf",), [(word, (round(math.log10(freq) + 9, 2),)) for word, freq in ranked],
                  limit)


def thai_words(limit: int | None = None) -> Source:
    """Thai words by their frequency in the Thai National Corpus, as pythainlp ships them (CC0): wordfreq has no
    Thai list. Thai is written without spaces; these are the words pythainlp's segmenter finds."""
    try:
        from pythainlp.corpus import tnc
    except ImportError:
        raise UserInputError("Thai's vocabulary needs pythainlp (pip install -e '.[vocab]')") from None
    thai = re.compile("[\u0e00-\u0e7f]")
    ranked = sorted(((word, count) for word, count in tnc.word_freqs() if thai.search(word)),
                    key=lambda item: (-item[1], item[0]))
    return Source("tnc", ("count",), [(word, (count,)) for word, count in ranked], limit)


def _bigram_source(table: pa.Table, limit: int | None) -> Source:
    table = sort_bigrams(table)
    rows = zip(*(table.column(name).to_pylist() for name in ("bigram", "count", "pmi")))
    return Source("bigram", ("count", "pmi"), [(bigram, (count, round(pmi, 3))) for bigram, count, pmi in rows],
                  limit)


def mined_bigrams(directory: Path, limit: int | None = None) -> Source:
    """The bigrams written by the mining job (jobs/mine_bigrams.py), highest PMI first."""
    from pipeline.run.directory import MANIFEST
    from pipeline.run.stages import STAGES
    from pipeline.vocab.bigrams import BIGRAM_SCHEMA

    path = Path(directory) / STAGES["bigrams"].files["bigrams"]
    if not (Path(directory) / MANIFEST).is_file() or not path.is_file():
        raise UserInputError(f"{directory}: no finished bigram mining here (run jobs/mine_bigrams.py first)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise UserInputError(f"{path}: not a readable Parquet file ({err})") from None
    if not set(BIGRAM_SCHEMA.names) <= set(table.column_names):
        raise UserInputError(f"{path}: expected columns {', '.join(BIGRAM_SCHEMA.names)}")
    return _bigram_source(table, limit)


def caption_bigrams(paths: list[Path], thresholds: BigramThresholds = BigramThresholds(),
                    limit: int | None = None) -> Source:
    """Bigrams mined in this process from files of captions (one a line, gzip or not), highest PMI first: a
    language's own captions, a corpus small enough for one process (the job does the same on Spark)."""
    from pipeline.vocab.bigrams import NgramCounts, score_bigrams

    captions = [line for path in map(Path, paths) for line in _list_lines(path, "caption file")]
    return _bigram_source(score_bigrams(NgramCounts.of(captions), thresholds), limit)


def _list_lines(path: Path, what: str = "extra list") -> list[str]:
    """The non-blank lines of a text file, gzip-compressed or not."""
    try:
        raw = path.read_bytes()
        raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError) as err:
        raise UserInputError(f"{path}: cannot read {what} ({getattr(err, 'strerror', None) or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise UserInputError(f"{path}:{line}: {what} is not valid UTF-8") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def extra_lists(paths: list[Path], limit: int | None = None) -> Source:
    """User lists (titles, domain terms), one entry per line, taken in the order given."""
    candidates = []
    for path in map(Path, paths):
        entries = [(line, (path.name,)) for line in _list_lines(path)]
        if not entries:
            raise UserInputError(f"{path}: the extra list is empty")
        candidates.extend(entries)
    return Source("extra", ("list",), candidates, limit)
