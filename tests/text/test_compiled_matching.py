"""Matcher.match_arrow, the compiled word-level walk, against Matcher.match and MetaCLIP's own loop."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from pipeline.experiments.multilingual import FILES, multilingual_captions
from pipeline.text import matching
from pipeline.text.matching import Matcher, compiled_automaton_folder
from pipeline.text.token_automaton import TokenAutomaton
from tests.helpers import REPO, metaclip_reference


@pytest.fixture(scope="module")
def every_real_caption(captions) -> list[str]:
    """The caption files and every line of the multilingual ones (Multi30k's four languages, Flickr8k-CN)."""
    return captions + [text for language in FILES for text in multilingual_captions(language, 10**6)]


@pytest.mark.real_data
@pytest.mark.parametrize("mode", ["metaclip", "default"])
def test_every_real_caption_gets_the_ids_of_match(mode, entries, every_real_caption):
    matcher = Matcher(entries, mode)
    compiled = matcher.match_arrow(pa.array(every_real_caption, pa.string())).to_pylist()
    expected = matcher.match_batch(every_real_caption)
    differing = [(text, got, want) for text, got, want in zip(every_real_caption, compiled, expected) if got != want]
    assert differing == []
    assert sum(map(bool, expected)) > 0.7 * len(expected) and len(expected) > 150_000  # not vacuous


# Characters that decide tokens in either mode, and some that must not
_ASCII_FUZZ = list("ab c,.;:?!`\t\n\r\x0b\x1c'-/()[]{}<>|\\\"sS_A") + ["  ", "dog", "hot", " cat ", "'s", "Dog's"]
_FUZZ_ALPHABET = _ASCII_FUZZ + ["é", "犬", "\u00a0", "\u3000", "\u2019s", "\u2013"]


def fuzzed_captions(count: int, seed: int = 0, alphabet: list[str] = _FUZZ_ALPHABET) -> list[str]:
    draw = random.Random(seed)
    texts = ["".join(draw.choices(alphabet, k=draw.randint(0, 24))) for _ in range(count)]
    texts.append("dog, hot dog. " * 5_000)  # very long: 70,000 characters, hundreds of matches of few entries
    texts.append(" ".join(f"w{index}" for index in range(3_000)) + " a b c")  # many distinct entries
    return texts


FUZZ_VOCABULARY = ["dog", "hot dog", "a", "b c", "c,", "a b", "a  b", " a", "b ", "é", "犬", "dog's", "u.s.",
                   "dog 's", "' s", "a ' b", "s", "a-b", "c ( a", "_", "a_b", "'", "cat's",
                   "a\tb", ",", "hot", "dog", "c a b", "a b c"] + [f"w{index}" for index in range(0, 3_000, 7)]


def test_metaclip_mode_equals_metaclip_loop_on_fuzzed_captions():
    """Punctuation, tabs, runs of spaces, non-ASCII and very long captions; entries with spaces at their ends,
    inner runs of spaces, punctuation, tabs, and a repeated entry (both ids match)."""
    captions = fuzzed_captions(3_000)
    got = Matcher(FUZZ_VOCABULARY, "metaclip").match_arrow(pa.array(captions)).to_pylist()
    expected = [metaclip_reference(text, FUZZ_VOCABULARY) for text in captions]
    assert got == expected
    assert sum(map(bool, got)) > 1_000 and len(got[-1]) > 400  # not vacuous


@pytest.mark.parametrize("alphabet", ["ascii", "mixed"])
def test_default_mode_equals_match_on_fuzzed_captions(alphabet):
    """ASCII captions are normalized inside the kernel: its quote, case and punctuation rules against
    default_normalize's; the others are normalized in Python first."""
    captions = fuzzed_captions(5_000, seed=1, alphabet=_ASCII_FUZZ if alphabet == "ascii" else _FUZZ_ALPHABET)
    matcher = Matcher(FUZZ_VOCABULARY, "default")
    got = matcher.match_arrow(pa.array(captions)).to_pylist()
    assert got == matcher.match_batch(captions)
    assert sum(map(bool, got)) > 2_000


@pytest.mark.parametrize("kind", ["string", "large_string", "sliced", "chunked"])
def test_nulls_slices_and_chunks_keep_their_rows(kind):
    matcher = Matcher(["dog", "hot dog"], "metaclip")
    texts = ["x", "a hot dog", None, "", "dog.", None, "no"]
    captions = pa.array(texts, pa.large_string() if kind == "large_string" else pa.string())
    if kind == "sliced":
        captions, texts = captions.slice(1, 5), texts[1:6]
    if kind == "chunked":
        captions = pa.chunked_array([captions.slice(0, 3), captions.slice(3)])
    result = matcher.match_arrow(captions)
    assert result.type == pa.list_(pa.int32())
    assert result.to_pylist() == [None if text is None else matcher.match(text) for text in texts]


def test_spaceless_languages_match_as_match_does():
    matcher = Matcher(["狗", "iPhone"], "metaclip", language="zh")
    texts = ["一只狗在跑", "我的iPhone", "我的 iPhone 很好", None]
    assert matcher.match_arrow(pa.array(texts)).to_pylist() == [[0], [], [1], None]


def test_the_automaton_is_built_once_and_memory_mapped_from_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("METACURATE_CACHE", str(tmp_path))
    vocabulary = ["Dog", "hot dog", "cat"]
    first = Matcher(vocabulary, "metaclip")
    assert first.match_arrow(pa.array(["a hot dog"])).to_pylist() == [[1]]
    folder = compiled_automaton_folder(vocabulary, "metaclip")
    assert sorted(path.name for path in (tmp_path / "automata").iterdir()) == [folder.name]
    written = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    loaded = TokenAutomaton.load(folder)
    assert isinstance(loaded.edges, np.memmap) and not loaded.edges.flags.writeable
    assert Matcher(vocabulary, "metaclip").match_arrow(pa.array(["cat"])).to_pylist() == [[2]]
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == written  # read, not rebuilt
    Matcher(vocabulary, "default").match_arrow(pa.array(["Cat"]))  # another mode's keys: another automaton
    Matcher([*vocabulary, "bird"], "metaclip").match_arrow(pa.array(["Cat"]))  # another vocabulary: another one
    assert len(list((tmp_path / "automata").iterdir())) == 3


def test_finding_a_cached_automaton_makes_no_keys(monkeypatch, tmp_path):
    """The cache is named by the vocabulary's fingerprint, the mode and the code that makes keys, so a warm run
    does not normalize every entry (1.3 s for 500k) just to find it."""
    monkeypatch.setenv("METACURATE_CACHE", str(tmp_path))
    folder = compiled_automaton_folder(["dog", "hot dog"], "default")
    monkeypatch.setattr(matching, "token_keys", lambda *args: pytest.fail("keys made again"))
    assert compiled_automaton_folder(["dog", "hot dog"], "default") == folder
    assert Matcher(["dog", "hot dog"], "default").match_arrow(pa.array(["A hot dog!"])).to_pylist() == [[0, 1]]


def test_an_unfinished_cache_folder_is_not_taken_for_a_finished_one(monkeypatch, tmp_path):
    """A build that died before its rename leaves only a hidden staging folder; the next build ignores it."""
    monkeypatch.setenv("METACURATE_CACHE", str(tmp_path))
    vocabulary = ["dog"]
    folder = compiled_automaton_folder(vocabulary, "metaclip")  # to learn its name
    shutil.rmtree(folder)
    (folder.parent / f".{folder.name}.dead").mkdir()
    assert Matcher(vocabulary, "metaclip").match_arrow(pa.array(["dog"])).to_pylist() == [[0]]
    assert (folder / "format.json").exists()


_WITHOUT_THE_COMPILED_WALK = """
import sys, types
sys.modules["metacurate_walk"] = None  # as on a worker that has only the shipped zip: the import fails
import pyarrow as pa
from pipeline.spark.match import match_batches
from pipeline.text import token_kernel
from pipeline.text.matching import Matcher
from pipeline.text.vocabulary import Vocabulary

assert "metacurate_walk" in token_kernel.MISSING, token_kernel.MISSING
vocabulary = Vocabulary(["dog", "hot dog", "cat"])
captions = ["A hot dog!", None, "no", "cat, dog"]
print(Matcher(vocabulary.entries, "default").match_arrow(pa.array(captions)).to_pylist())
run = match_batches(vocabulary.fingerprint, 3, "default", None, types.SimpleNamespace(value=vocabulary),
                    pa.schema([("uid", pa.string()), ("entry_ids", pa.list_(pa.int32()))]))
batch = pa.record_batch({"uid": ["a", "b", "c", "d"], "url": ["u"] * 4, "caption": captions})
outputs = list(run(iter([batch])))
print(outputs[0]["rows"].to_pydict(), outputs[0]["rejects"].column("uid").to_pylist())
"""


def test_without_the_compiled_walk_matching_falls_back_to_pyahocorasick():
    """A process where metacurate_walk cannot be imported says why and matches with the same results, both
    Matcher.match_arrow and a Spark match task (its automaton folder ignored)."""
    result = subprocess.run([sys.executable, "-c", _WITHOUT_THE_COMPILED_WALK], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "[[0, 1], None, [], [0, 2]]"
    assert lines[1] == "{'uid': ['a', 'd'], 'entry_ids': [[0, 1], [0, 2]]} ['b', 'c']"
