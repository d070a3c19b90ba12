"""The per-language vocabularies' build: frequent words, then bigrams mined from the language's captions, then the
user's lists; spaceless languages mine no bigrams; files are named by the codes the language identifier gives."""

import gzip
from pathlib import Path

import pytest

from pipeline.errors import UserInputError
from pipeline.experiments.multilingual import multilingual_captions
from pipeline.vocab.sources import wordfreq_unigrams
from pipeline.vocab.worldwide import _by_language, build_language

pytestmark = pytest.mark.real_data


def test_frequent_words_then_mined_bigrams_then_the_users_list(tmp_path):
    extra = tmp_path / "terms_de.txt"
    extra.write_text("Kölner Dom\nUnd\n")  # the second is already in ("und"): one entry per matching key
    captions = tmp_path / "captions_de.txt"
    captions.write_text("\n".join(multilingual_captions("de", 5_000)) + "\n")
    vocabulary = build_language("de", 500, [captions], [extra])
    entries = vocabulary.entries
    assert entries[:20] == [word for word, _ in wordfreq_unigrams(20, "de").candidates[:20]]  # most frequent first
    assert {"die", "der", "und"} <= set(entries[:20])
    bigrams = entries[500:-1]
    assert len(bigrams) > 20 and all(len(bigram.split()) == 2 for bigram in bigrams)
    assert entries[-1] == "Kölner Dom"
    assert vocabulary.reports["bigram"].added == len(bigrams)


def test_spaceless_languages_mine_no_bigrams(tmp_path):
    captions = tmp_path / "zh.txt.gz"
    captions.write_bytes(gzip.compress("一只狗在草地上奔跑\n".encode()))
    with pytest.raises(UserInputError, match="space-separated words"):
        build_language("zh", 100, [captions], [])


def test_languages_named_as_the_identifier_names_them_go_to_wordfreqs_list():
    assert _by_language("--extra", ["no=a.txt", "de=b.txt", "hr=c.txt"]) == {
        "nb": [Path("a.txt")], "de": [Path("b.txt")], "sh": [Path("c.txt")]}
    with pytest.raises(UserInputError, match="LANGUAGE=FILE"):
        _by_language("--extra", ["terms.txt"])
