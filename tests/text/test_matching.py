"""Matcher semantics: MetaCLIP mode against MetaCLIP's own loop, default mode on normalization cases."""

import pytest

from pipeline.errors import UserInputError
from pipeline.text.matching import Matcher
from tests.helpers import metaclip_reference


def reference_sample(entries: list[str], size: int) -> list[str]:
    """A real sub-vocabulary: the most frequent English words, and an even spread of the rest
    (multi-word WordNet names, names with punctuation and capitals among them)."""
    from wordfreq import top_n_list

    frequent = top_n_list("en", size // 2)
    spread = entries[:: max(1, len(entries) // (size // 2))]
    tricky = [e for e in entries if any(c in e for c in ".,'-&") or e != e.lower()][::200]
    return list(dict.fromkeys(frequent + spread + tricky))


def test_metaclip_mode_equals_metaclip_loop_on_every_real_caption(captions, entries):
    vocab = reference_sample(entries, 3000)
    matcher = Matcher(vocab, mode="metaclip")
    got = matcher.match_batch(captions)
    differing = [text for text, ids in zip(captions, got) if ids != metaclip_reference(text, vocab)]
    assert differing == []
    assert sum(bool(ids) for ids in got) > 0.75 * len(captions)  # the comparison is not vacuous


def test_metaclip_mode_equals_metaclip_loop_with_the_full_vocabulary(captions, entries):
    matcher = Matcher(entries, mode="metaclip")
    sample = captions[::250]  # the reference loop tests all 500k entries per caption: about 50 ms each
    assert [matcher.match(text) for text in sample] == [metaclip_reference(text, entries) for text in sample]


def test_metaclip_mode_is_case_sensitive_and_splits_listed_punctuation_only():
    matcher = Matcher(["dog", "Dog", "hot dog", "dog's", "u.s."], mode="metaclip")
    assert matcher.match("A hot dog, please.") == [0, 2]
    assert matcher.match("dog's toy") == [3]  # the apostrophe is not split in MetaCLIP
    assert matcher.match("u.s. army") == []  # entries are not spaced, captions are


def test_default_mode_every_entry_matches_itself(entries):
    matcher = Matcher(entries, mode="default")
    missing = [entry_id for entry_id, entry in enumerate(entries) if entry_id not in matcher.match(entry)]
    assert missing == []


@pytest.mark.parametrize("caption", [
    "My dog's bed", "(DOG) photo", "dog, cat", "Dog-friendly hotel", "\u201cdog\u201d", "the  DOG\tbarks",
    "dogs' and dog/cat", "ＤＯＧ in full width",
])
def test_default_mode_finds_dog_through_normalization(caption):
    assert Matcher(["dog", "cat"], mode="default").match(caption)[:1] == [0]


def test_default_mode_keeps_words_whole():
    matcher = Matcher(["dog", "t-shirt", "don't", "St. Louis", "new york"], mode="default")
    assert matcher.match("hotdogs and doggy") == []
    assert matcher.match("Red T-Shirt") == [1]
    assert matcher.match("I don't know") == [2]
    assert matcher.match("St. Louis at night") == [3]
    assert matcher.match("NEW   York skyline") == [4]


def test_entries_sharing_a_normalized_form_all_match():
    matcher = Matcher(["T-shirt", "t-shirt", "tee"], mode="default")
    assert matcher.match("a t-shirt") == [0, 1]


def test_match_batch_returns_sorted_distinct_ids():
    matcher = Matcher(["b", "a", "a b"], mode="metaclip")
    assert matcher.match_batch(["a b a b", "", "c"]) == [[0, 1, 2], [], []]


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(UserInputError, match="unknown matching mode 'fuzzy'"):
        Matcher(["a"], mode="fuzzy")


def test_entry_that_normalizes_to_nothing_is_a_clear_error():
    with pytest.raises(UserInputError, match="entry 1"):
        Matcher(["dog", " \t "], mode="default")
