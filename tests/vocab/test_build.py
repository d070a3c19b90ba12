"""The vocabulary build: sources, merge rules, byte-identical rebuilds, the shipped file, coverage, bad inputs."""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import subprocess
import sys
import zipfile

import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError, user_error_message
from pipeline.text.matching import Matcher
from pipeline.vocab.bigrams import BigramThresholds, NgramCounts, score_bigrams, word_runs
from pipeline.vocab.build import MAX_ENTRY_CHARS, build_vocabulary
from pipeline.vocab.coverage import coverage, pool_captions
from pipeline.vocab.sources import Source, extra_lists, find_wordnet, mined_bigrams, wordnet_lemmas
from tests.helpers import CC3M, LAION, REPO, VOCAB, require_shared_data

# Lines in WordNet 3.0's index format: lemma, pos, synset count, pointer count, pointers, sense counts, offsets.
WORDNET_INDEX = {
    "noun": ["  1 This software and database is being provided to you, the LICENSEE, by Princeton University",
             "dog n 7 5 @ ~ #m #p %p 7 1 02084071 10114209 10023039 09886220 07676602 03907626 02710044",
             "hot_dog n 2 2 @ ~ 2 0 07697537 10187710",
             "new_york n 3 2 @ #p 3 0 09119277 09118505 08695539",
             "dog's_breakfast n 1 1 @ 1 0 13978033"],
    "verb": ["  1 This software and database is being provided to you, the LICENSEE, by Princeton University",
             "dog v 1 3 @ ~ > 1 0 02003601"],
    "adj": ["big a 13 5 ! & ^ = + 13 4 01382086 01384438 01512527 01279978 01280908"],
    "adv": ["big r 5 2 ! ^ 5 0 00151105 00510050 00160194 00067966 00512795"],
}


@pytest.fixture
def wordnet_dir(tmp_path):
    folder = tmp_path / "wordnet"
    folder.mkdir()
    for pos, lines in WORDNET_INDEX.items():
        (folder / f"index.{pos}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def run_module(*args: str, seed: str = "0") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, cwd=REPO)


def test_wordnet_lemmas_have_spaces_and_summed_senses(wordnet_dir):
    lemmas = dict(wordnet_lemmas(wordnet_dir).candidates)
    assert lemmas["dog"] == (8,)  # 7 noun senses + 1 verb sense
    assert lemmas["hot dog"] == (2,)
    assert list(lemmas)[:3] == ["dog", "hot dog", "new york"]


def test_nltk_zip_gives_the_same_lemmas(wordnet_dir, tmp_path):
    archive = tmp_path / "wordnet.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        for path in wordnet_dir.iterdir():
            packed.write(path, f"wordnet/{path.name}")
    assert wordnet_lemmas(find_wordnet(archive)).candidates == wordnet_lemmas(wordnet_dir).candidates


def test_merge_keeps_first_spelling_and_records_every_source():
    sources = [Source("a", ("n",), [("Dog", (1,)), ("hot  dog", (2,)), ("x" * (MAX_ENTRY_CHARS + 1), (3,))]),
               Source("b", ("z",), [("dog", (5.0,)), ("dog's", (4.0,)), ("cat's", (3.0,)), ("", (0.0,))])]
    vocabulary = build_vocabulary(sources, total=10)
    assert vocabulary.entries == ["Dog", "hot dog", "cat's"]  # no "dog" twin; "cat's" has no "cat" to match through
    assert vocabulary.provenance[0] == {"a": (1,), "b": (5.0,)}
    assert dict(vocabulary.reports["a"].skipped) == {"too_long": 1}
    assert dict(vocabulary.reports["b"].skipped) == {"duplicate": 1, "possessive": 1, "empty": 1}


def test_source_limits_and_total_cut_the_lowest_priority_first():
    sources = [Source("a", ("n",), [(word, (0,)) for word in ("one", "two", "three")], limit=2),
               Source("b", ("n",), [(word, (0,)) for word in ("four", "five", "six")])]
    vocabulary = build_vocabulary(sources, total=4)
    assert vocabulary.entries == ["one", "two", "four", "five"]
    assert vocabulary.reports["a"].skipped["over_size"] == 1
    assert vocabulary.reports["b"].skipped["over_size"] == 1


def test_word_runs_stop_at_punctuation_numbers_and_possessives():
    assert word_runs("New York's 2 big-city dogs, (cats)") == [["new", "york"], ["big"], ["city", "dogs"], ["cats"]]


def test_pmi_is_log2_of_observed_over_chance_and_min_count_drops_rare_pairs():
    counts = NgramCounts.of(["hot dog"] * 3 + ["hot day", "big dog", "big day"])
    mined = {row["bigram"]: row for row in score_bigrams(counts, BigramThresholds(1, -10)).to_pylist()}
    # 12 words, 6 pairs: p(hot dog) = 3/6, p(hot) = p(dog) = 4/12; p(hot day) = 1/6, p(day) = 2/12
    assert mined["hot dog"]["pmi"] == pytest.approx(math.log2((3 / 6) / ((4 / 12) * (4 / 12))))
    assert mined["hot day"]["pmi"] == pytest.approx(math.log2((1 / 6) / ((4 / 12) * (2 / 12))))
    assert (mined["hot dog"]["count"], mined["hot dog"]["left_count"], mined["hot dog"]["right_count"]) == (3, 4, 4)
    # a pair seen once can score high by chance ("big day": log2 6); the minimum count is what removes it
    strict = score_bigrams(counts, BigramThresholds(min_count=2, min_pmi=0))
    assert strict.column("bigram").to_pylist() == ["hot dog"]
    assert score_bigrams(counts, BigramThresholds(min_count=2, min_pmi=2.2)).num_rows == 0


def test_spark_mining_equals_one_process_counting(spark, tmp_path, captions):
    from pipeline.run.stages import STAGES
    from pipeline.spark.bigrams import run_mine_bigrams

    thresholds = BigramThresholds(min_count=3, min_pmi=6.0)
    manifest = run_mine_bigrams(spark, [str(LAION), str(CC3M)], tmp_path / "bigrams", thresholds)
    distinct = sorted(set(captions))
    expected = score_bigrams(NgramCounts.of(distinct), thresholds)
    mined = pq.read_table(tmp_path / "bigrams" / STAGES["bigrams"].files["bigrams"])
    assert mined.num_rows > 1000
    assert mined.column("bigram").to_pylist() == expected.column("bigram").to_pylist()
    assert mined.column("pmi").to_pylist() == pytest.approx(expected.column("pmi").to_pylist())
    assert manifest["rows_out"] == len(distinct)
    assert manifest["rows_in"] == manifest["rows_out"] + sum(manifest["rejected"].values())
    again = run_mine_bigrams(spark, [str(LAION), str(CC3M)], tmp_path / "bigrams", thresholds)
    assert again["skipped"] and again["fingerprint"] == manifest["fingerprint"]


@pytest.fixture
def small_build_inputs(spark, tmp_path, wordnet_dir):
    from pipeline.spark.bigrams import run_mine_bigrams

    corpus = tmp_path / "corpus.jsonl"
    rows = [{"url": f"http://x/{i}", "caption": text} for i, text in enumerate(
        ["a hot dog stand in new york", "hot dog with mustard", "golden retriever puppy on grass",
         "a golden retriever in the park", "hot dog bun", "golden retriever running", "the park in autumn"])]
    rows.append({"url": "http://x/bad", "caption": None})
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    run_mine_bigrams(spark, [str(corpus)], tmp_path / "bigrams", BigramThresholds(min_count=2, min_pmi=1.0))
    extra = tmp_path / "terms.txt"
    extra.write_text("Golden Gate Bridge\nhot dog\n\nmustard\n", encoding="utf-8")
    return ["--wordnet", str(wordnet_dir), "--bigrams", str(tmp_path / "bigrams"), "--extra", str(extra),
            "--unigram-size", "300", "--total", "320"]


def test_small_build_is_byte_identical_across_processes(small_build_inputs, tmp_path):
    outputs = []
    for attempt, seed in enumerate(("1", "2")):
        names = [tmp_path / f"{attempt}.{name}" for name in ("vocab.txt.gz", "provenance.tsv.gz", "report.json")]
        done = run_module("pipeline.vocab.build", *small_build_inputs, "--out", str(names[0]),
                          "--provenance", str(names[1]), "--report", str(names[2]), seed=seed)
        assert done.returncode == 0, done.stderr
        outputs.append([path.read_bytes() for path in names])
    assert outputs[0] == outputs[1]
    entries = gzip.decompress(outputs[0][0]).decode().splitlines()
    assert entries[:5] == ["dog", "hot dog", "new york", "dog's breakfast", "big"]  # WordNet first
    assert len(entries) == 5 + 300 + 2 + 2  # WordNet, --unigram-size, 2 new bigrams, 2 new extra terms
    assert "golden retriever" in entries and "Golden Gate Bridge" in entries
    provenance = gzip.decompress(outputs[0][1]).decode().splitlines()
    assert provenance[0].split("\t") == ["entry_id", "entry", "sources", "wordnet_senses", "wordfreq_zipf",
                                         "bigram_count", "bigram_pmi", "extra_list"]
    hot_dog = provenance[2].split("\t")
    assert hot_dog[:3] == ["1", "hot dog", "wordnet,bigram,extra"]
    assert hot_dog[3] == "2" and hot_dog[5] == "3" and hot_dog[7] == "terms.txt"
    report = json.loads(outputs[0][2])
    for source in report["sources"].values():
        assert source["offered"] == source["added"] + sum(source["skipped"].values())
    assert sum(source["added"] for source in report["sources"].values()) == report["entries"] == len(entries)


def test_shipped_vocabulary_holds_its_promises():
    entries = gzip.decompress(VOCAB.read_bytes()).decode("utf-8").split("\n")[:-1]
    assert len(entries) == 500_000 == len(set(entries))
    assert all(entry and entry == entry.strip() and len(entry) <= MAX_ENTRY_CHARS for entry in entries)
    matches = Matcher(entries, "default").match_batch(entries)
    assert [entry_id for entry_id, found in enumerate(matches) if entry_id not in found] == []
    with gzip.open(REPO / "metadata" / "provenance.tsv.gz", "rt", encoding="utf-8") as table:
        rows = [line.rstrip("\n").split("\t") for line in table][1:]
    assert [row[1] for row in rows] == entries
    report = json.loads((REPO / "metadata" / "vocab_build.json").read_text())
    assert {name: source["added"] for name, source in report["sources"].items()} == {
        name: sum(row[2].split(",")[0] == name for row in rows) for name in report["sources"]}


def test_coverage_counts_captions_matched_and_matches():
    matcher = Matcher(["dog", "hot dog", "cat"], "default")
    result = coverage(matcher, ["A hot dog!", "my cat", "nothing here", "dog and cat"])
    assert (result.captions, result.matched, result.matches) == (4, 3, 5)
    assert result.matched_fraction == 0.75
    assert result.matches_per_matched_caption == pytest.approx(5 / 3)


def _card_figures() -> dict[str, tuple[float, float]]:
    """Coverage rows of the data card's table: file -> (matched %, matches per matched caption)."""
    figures = {}
    for line in (REPO / "metadata" / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) >= 5 and cells[0].startswith("coverage:"):
            figures[cells[0].split(":", 1)[1].strip()] = (float(cells[2].rstrip("%")), float(cells[4]))
    return figures


def test_data_card_reports_the_measured_coverage(entries):
    require_shared_data(LAION)
    figures = _card_figures()
    assert set(figures) == {LAION.name, CC3M.name}
    matcher = Matcher(entries, "default")
    for path in (LAION, CC3M):
        measured = coverage(matcher, pool_captions(str(path)))
        assert figures[path.name] == (round(100 * measured.matched_fraction, 1),
                                      round(measured.matches_per_matched_caption, 2))


def test_missing_wordnet_is_a_clear_error(tmp_path):
    done = run_module("pipeline.vocab.build", "--wordnet", str(tmp_path / "nowhere"), "--out", str(tmp_path / "v.gz"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: WordNet not found") and str(tmp_path / "nowhere") in done.stderr
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match=r"empty/index.noun: WordNet index not found"):
        wordnet_lemmas(find_wordnet(tmp_path / "empty"))


def test_bad_extra_lists_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"empty.txt: the extra list is empty"):
        extra_lists([empty])
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"cafe\nna\xefve\n")
    with pytest.raises(UserInputError, match=r"latin1.txt:2: extra list is not valid UTF-8"):
        extra_lists([latin1])
    with pytest.raises(UserInputError, match=r"missing.txt: cannot read extra list"):
        extra_lists([tmp_path / "missing.txt"])


def test_corrupt_corpus_and_unfinished_mining_are_clear_errors(spark, tmp_path):
    from pipeline.spark.bigrams import run_mine_bigrams

    corrupt = tmp_path / "corpus.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(UserInputError, match=r"corpus.parquet: not a readable Parquet file"):
        run_mine_bigrams(spark, [str(corrupt)], tmp_path / "bigrams", BigramThresholds())
    truncated = tmp_path / "captions.tsv.gz"
    lines = "".join(f"a photo of thing {row}\thttp://example.com/{row}.jpg\n" for row in range(20_000))
    truncated.write_bytes(gzip.compress(lines.encode())[:20_000])
    with pytest.raises(Exception) as raised:
        run_mine_bigrams(spark, [str(truncated)], tmp_path / "bigrams", BigramThresholds())
    assert re.match(r".*captions.tsv.gz: unreadable after line \d+ \(Compressed file ended",
                    user_error_message(raised.value))
    assert not (tmp_path / "bigrams").exists()
    (tmp_path / "half").mkdir()
    with pytest.raises(UserInputError, match=r"half: no finished bigram mining here"):
        mined_bigrams(tmp_path / "half")
