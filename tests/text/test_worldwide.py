"""Worldwide curation's core: each caption against its own language's vocabulary, word boundaries by script,
global entry ids, and MetaCLIP 2's per-language t rule (on the real multilingual captions)."""

import numpy as np
import pytest
import wordfreq

from pipeline.errors import UserInputError
from pipeline.experiments.multilingual import FILES as MULTILINGUAL_FILES
from pipeline.experiments.multilingual import multilingual_captions
from pipeline.hashing import content_uid
from pipeline.text.balancing import entry_probabilities, keep_mask
from pipeline.text.counting import count_entries
from pipeline.text.matching import Matcher
from pipeline.text.vocabulary import WORLDWIDE_METADATA, Vocabulary, load_vocabulary, worldwide_vocabulary
from pipeline.text.worldwide import (
    EntryLanguages,
    WorldwideMatcher,
    entry_thresholds,
    language_thresholds,
    t_for_tail_share,
    tail_share,
)
from pipeline.vocab.entries import SHIPPED_VOCABULARY


def test_a_caption_is_matched_against_its_own_language_only():
    vocabulary = worldwide_vocabulary({"en": ["dog", "park"], "de": ["hund", "park"], "fr": ["chien", "parc"]})
    matcher = WorldwideMatcher(vocabulary, "default")
    caption = "le chien et le hund dans le park"
    found = matcher.match_batch([caption, caption, caption, caption], ["fr", "de", "en", "xx"])
    start = vocabulary.start_of()
    assert found == [[start["fr"]], [start["de"], start["de"] + 1], [start["en"] + 1], None]
    assert matcher.built == ["de", "en", "fr"]  # the automata of the languages seen, no other


def test_english_ids_are_todays_ids():
    english = ["dog", "golden retriever", "park"]
    vocabulary = worldwide_vocabulary({"zh": ["狗"], "en": english, "de": ["Hund"]})
    assert vocabulary.languages == ("en", "de", "zh") and vocabulary.entries[:3] == english
    captions = ["A golden retriever in the park", "a dog", "nothing here"]
    assert WorldwideMatcher(vocabulary, "default").match_batch(captions, ["en"] * 3) == \
        Matcher(english).match_batch(captions)
    assert Vocabulary(english).fingerprint != vocabulary.fingerprint


def test_chinese_matches_inside_unsegmented_text_and_german_compounds_stay_whole():
    vocabulary = worldwide_vocabulary({"en": ["dog"], "zh": ["狗", "公园", "iphone"], "de": ["hund", "haus"]})
    start = vocabulary.start_of()
    found = WorldwideMatcher(vocabulary, "default").match_batch(
        ["一只狗在公园里跑", "我的iphone手机", "我的 iPhone 手机", "Der Haushund schläft", "Ein Hund vor dem Haus."],
        ["zh", "zh", "zh", "de", "de"])
    assert found == [[start["zh"], start["zh"] + 1], [], [start["zh"] + 2],  # Latin entries keep their spaces
                     [], [start["de"], start["de"] + 1]]


def test_the_tail_share_t_is_the_nearest_the_counts_allow():
    draw = np.random.default_rng(0)
    for _ in range(200):
        counts = draw.zipf(1.6, size=draw.integers(1, 300)).astype(np.int64)
        target = float(draw.uniform(0, 1))
        t, share = t_for_tail_share(counts, target)
        assert share == pytest.approx(tail_share(counts, t))
        best = min(abs(tail_share(counts, value) - target) for value in np.unique(counts))
        assert abs(share - target) == pytest.approx(best)


def test_without_english_matches_a_derived_t_needs_a_given_one():
    counts, languages = np.array([0, 0, 5, 3]), EntryLanguages.of(["en", "en", "de", "de"])
    with pytest.raises(UserInputError, match="--t-per-language"):
        language_thresholds(counts, languages, 10.0)
    assert language_thresholds(counts, languages, 10.0, {"de": 4.0})["de"].t == 4.0


def wordfreq_vocabulary(size: int) -> Vocabulary:
    """Each language's most frequent words (real word lists, segmented for Chinese by wordfreq)."""
    return worldwide_vocabulary({language: wordfreq.top_n_list(language, size) for language in MULTILINGUAL_FILES})


@pytest.mark.real_data
def test_each_language_gets_englishs_tail_share_on_the_real_multilingual_captions():
    vocabulary = wordfreq_vocabulary(3000)
    captions, languages = [], []
    for language in MULTILINGUAL_FILES:
        captions += multilingual_captions(language, 4000)
        languages += [language] * 4000
    found = WorldwideMatcher(vocabulary, "default").match_batch(captions, languages)
    counts = count_entries([ids for ids in found], len(vocabulary.entries))
    entry_languages = vocabulary.entry_languages()
    thresholds = language_thresholds(counts, EntryLanguages.of(entry_languages), english_t=200.0)
    english = thresholds["en"].tail_share
    assert 0.05 < english < 0.95  # a tail and a head: the rule has something to match
    report = {}
    for language, threshold in thresholds.items():
        language_counts = counts[entry_languages == language]
        achievable = {round(tail_share(language_counts, value), 12) for value in np.unique(language_counts)}
        nearest = min(achievable, key=lambda share: abs(share - english))
        report[language] = (threshold.t, round(threshold.tail_share, 4))
        assert abs(threshold.tail_share - english) <= 0.01 or threshold.tail_share == pytest.approx(nearest)
    print(f"English tail share at t=200: {english:.4f}; t and tail share per language: {report}")
    assert {language for language, threshold in thresholds.items() if threshold.how == "derived"} == \
        set(MULTILINGUAL_FILES) - {"en"}


def test_worldwide_keep_decisions_do_not_depend_on_batching():
    vocabulary = worldwide_vocabulary({"en": ["dog", "cat"], "de": ["hund", "katze"]})
    captions = [("a dog", "en"), ("a cat", "en"), ("ein hund", "de"), ("eine katze", "de")] * 50
    matcher = WorldwideMatcher(vocabulary, "default")
    ids = matcher.match_batch([text for text, _ in captions], [language for _, language in captions])
    uids = [content_uid(str(position).encode(), text.encode()) for position, (text, _) in enumerate(captions)]
    counts = count_entries(ids, len(vocabulary.entries))
    languages = EntryLanguages.of(vocabulary.entry_languages())
    thresholds = language_thresholds(counts, languages, 20.0, {"de": 10.0})
    probs = entry_probabilities(counts, entry_thresholds(languages, thresholds))
    whole = keep_mask(uids, ids, probs, seed=7)
    order = np.random.default_rng(1).permutation(len(uids))
    in_pieces = np.zeros(len(uids), dtype=bool)
    for piece in np.array_split(order, 7):
        in_pieces[piece] = keep_mask([uids[i] for i in piece], [ids[i] for i in piece], probs, seed=7)
    assert (whole == in_pieces).all()
    kept_de = whole[[language == "de" for _, language in captions]].sum()
    assert 0 < kept_de < 100  # German capped near its own t (10 per entry, 2 entries), not English's


def test_the_shipped_vocabularies_load_and_thai_and_chinese_match_unsegmented():
    vocabulary = load_vocabulary(SHIPPED_VOCABULARY, WORLDWIDE_METADATA)
    assert len(vocabulary.languages) >= 40 and vocabulary.languages[0] == "en"
    assert {"de", "fr", "cs", "zh", "ja", "th"} <= set(vocabulary.languages)
    assert all(len(block) >= 10_000 for block in vocabulary.blocks())
    matcher, start = WorldwideMatcher(vocabulary, "default"), vocabulary.start_of()
    entries = vocabulary.entries
    thai, chinese = matcher.match_batch(["แมวนอนอยู่บนโซฟาสีแดง", "一只小狗在草地上奔跑"], ["th", "zh"])
    assert {"แมว", "โซฟา"} <= {entries[entry_id] for entry_id in thai}  # cat, sofa: inside unspaced Thai
    assert {"小狗", "草地"} <= {entries[entry_id] for entry_id in chinese}
    assert all(start["th"] <= entry_id < start["th"] + len(vocabulary.blocks()[vocabulary.languages.index("th")])
               for entry_id in thai)
