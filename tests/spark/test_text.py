"""Text curation on a local Spark session: invariance, accounting, bad input, skipping reruns."""

import json
import random
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError
from pipeline.run.directory import MANIFEST, REJECTS
from pipeline.run.stages import STAGES, TEXT_STAGES
from pipeline.spark.count import run_count
from pipeline.spark.curate import TextCurationConfig, curate_text
from pipeline.spark.ingest import run_ingest
from pipeline.text.balancing import BalanceConfig
from pipeline.text.counting import count_entries
from pipeline.text.ingest import IngestConfig
from pipeline.text.matching import Matcher
from pipeline.text.vocabulary import load_vocabulary
from pipeline.vocab.entries import load_entries
from tests.helpers import LAION

TEXT_FOLDERS = [stage.folder for stage in TEXT_STAGES]


@pytest.fixture(scope="module")
def head_vocab(tmp_path_factory):
    """Frequent words only, so most captions match head entries and balancing really draws."""
    from wordfreq import top_n_list

    path = tmp_path_factory.mktemp("vocab") / "head.txt"
    path.write_text("\n".join(top_n_list("en", 3000)) + "\n")
    return path


def split_pool(source, directory, parts, shuffle_seed=None):
    rows = pq.read_table(source, columns=["URL", "TEXT"]).to_pylist()
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(rows)
    directory.mkdir(parents=True)
    for part in range(parts):
        pq.write_table(pa.Table.from_pylist(rows[part::parts]), directory / f"part-{part:03d}.parquet")
    return directory


def curate(spark, pool, out, vocab, t=40.0, seed=0, shuffle_partitions=4, **extra):
    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
    config = TextCurationConfig(pool=str(pool), metadata=str(vocab), out=str(out),
                                balance=BalanceConfig(t=t, seed=seed), **extra)
    return curate_text(spark, config)


def selected_uids(run_dir):
    return set(pq.read_table(run_dir / "selection", columns=["uid"]).column("uid").to_pylist())


@pytest.mark.real_data
def test_selection_is_identical_across_partitionings_and_row_order(spark, tmp_path, head_vocab):
    runs = {}
    for name, parts, order in (("p1", 1, None), ("p2", 2, None), ("p8", 8, None), ("shuffled", 3, 7)):
        pool = split_pool(LAION, tmp_path / f"pool-{name}", parts, order)
        curate(spark, pool, tmp_path / name, head_vocab, shuffle_partitions=parts)
        runs[name] = selected_uids(tmp_path / name)
    assert 1000 < len(runs["p1"]) < 9000  # balancing really drew
    assert runs["p1"] == runs["p2"] == runs["p8"] == runs["shuffled"]
    curate(spark, tmp_path / "pool-p2", tmp_path / "seed1", head_vocab, seed=1)
    assert selected_uids(tmp_path / "seed1") != runs["p1"]


@pytest.mark.real_data
@pytest.mark.parametrize("mode", ["default", "metaclip"])
def test_the_match_stage_finds_what_the_matcher_finds(spark, tmp_path, head_vocab, mode):
    """The stage's tasks map the compiled automaton the driver built: the same ids as Matcher.match_batch
    (pyahocorasick) for every ingested caption, and every caption with none is a no_match reject."""
    curate(spark, LAION, tmp_path / "run", head_vocab, mode=mode)
    ingested = pq.read_table(tmp_path / "run" / "ingest", columns=["uid", "caption"]).to_pylist()
    expected = dict(zip([row["uid"] for row in ingested],
                        Matcher(load_entries(head_vocab), mode).match_batch([row["caption"] for row in ingested])))
    matched = pq.read_table(tmp_path / "run" / "matches", columns=["uid", "entry_ids"]).to_pylist()
    assert {row["uid"]: row["entry_ids"] for row in matched} == {uid: ids for uid, ids in expected.items() if ids}
    rejects = pq.read_table(tmp_path / "run" / "matches" / REJECTS).to_pylist()
    assert sorted(row["uid"] for row in rejects) == sorted(uid for uid, ids in expected.items() if not ids)
    assert {row["reason"] for row in rejects} == {"no_match"} and 1000 < len(matched) < len(ingested)


@pytest.mark.real_data
def test_manifests_add_up_and_outputs_follow_the_contract(spark, tmp_path, head_vocab):
    manifests = curate(spark, LAION, tmp_path / "run", head_vocab)
    for stage in TEXT_FOLDERS:
        manifest = json.loads((tmp_path / "run" / stage / MANIFEST).read_text())
        assert manifest["rows_in"] == manifest["rows_out"] + sum(manifest["rejected"].values())
        assert manifest["wall_seconds"] >= 0 and manifest["config"] is not None
    assert manifests["ingest"]["rows_in"] == pq.ParquetFile(LAION).metadata.num_rows
    assert manifests["matches"]["rows_in"] == manifests["ingest"]["rows_out"]
    assert manifests["selection"]["rows_in"] == manifests["matches"]["rows_out"]
    rejects = pq.read_table(tmp_path / "run" / "ingest" / REJECTS).to_pylist()
    assert len(rejects) == sum(manifests["ingest"]["rejected"].values())
    selection = pq.read_table(tmp_path / "run" / "selection")
    assert selection.column_names == ["uid", "url", "caption", "entry_ids", "keep_prob"]
    assert len(set(selection.column("uid").to_pylist())) == selection.num_rows
    counts = pq.read_table(tmp_path / "run" / "entry_counts").to_pydict()
    assert counts["entry_id"][:3] == [0, 1, 2] and len(counts["entry"]) == 3000
    matched = pq.read_table(tmp_path / "run" / "matches", columns=["entry_ids"]).column("entry_ids")
    assert counts["count"] == count_entries(matched, 3000).tolist() and sum(counts["count"]) > 1000
    t = manifests["selection"]["t"]
    for count, selected in zip(counts["count"], counts["selected"]):
        assert selected <= count
        if count <= t:
            assert selected == count


@pytest.mark.real_data
def test_rerun_with_same_config_is_skipped_and_changed_config_is_not(spark, tmp_path, head_vocab):
    curate(spark, LAION, tmp_path / "run", head_vocab)
    before = selected_uids(tmp_path / "run")
    again = curate(spark, LAION, tmp_path / "run", head_vocab)
    assert all(manifest["skipped"] for manifest in again.values())
    changed = curate(spark, LAION, tmp_path / "run", head_vocab, t=20.0)
    assert [changed[stage]["skipped"] for stage in TEXT_FOLDERS] == [True, True, True, False]
    assert selected_uids(tmp_path / "run") < before
    shutil.rmtree(STAGES["match"].file(tmp_path / "run", "partial_counts"))  # as an older match stage left it
    with pytest.raises(FileNotFoundError, match="older match stage; rerun it with --force"):
        run_count(tmp_path / "run", load_vocabulary(head_vocab), force=True)


def test_bad_rows_in_every_format_are_accounted_for(spark, tmp_path, head_vocab):
    pool = tmp_path / "pool"
    pool.mkdir()
    pq.write_table(pa.table({
        "url": pa.array([b"http://a/1", b"http://a/2", None, b"http://a/4", b"http://a/1"], pa.binary()),
        "caption": pa.array([b"the dog", None, b"the cat", b"caf\xe9 time", b"the dog"], pa.binary()),
    }), pool / "a.parquet")
    (pool / "b.tsv").write_bytes(b"caption\turl\nthe house\thttp://b/1\n\thttp://b/2\n" + b"y" * 1_000_000
                                 + b"\thttp://b/3\nbroken line\n")
    (pool / "c.jsonl").write_text('{"url": "http://c/1", "caption": "the zebra"}\n{oops\n')
    manifests = curate(spark, pool, tmp_path / "run", head_vocab)
    ingest = manifests["ingest"]
    assert ingest["rows_in"] == 11
    assert ingest["rejected"] == {"caption_too_long": 1, "duplicate": 1, "invalid_utf8": 1,
                                  "malformed_row": 2, "missing_caption": 2, "missing_url": 1}
    assert ingest["rows_out"] == 3
    rejects = pq.read_table(tmp_path / "run" / "ingest" / REJECTS).to_pylist()
    assert {(r["source_file"].rsplit("/", 1)[1], r["source_row"]) for r in rejects if r["reason"] == "malformed_row"} \
        == {("b.tsv", 5), ("c.jsonl", 2)}


def test_corrupt_parquet_and_empty_pool_are_clear_errors(spark, tmp_path, head_vocab):
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "x.parquet").write_bytes(b"garbage")
    with pytest.raises(UserInputError, match=r"x.parquet: not a readable Parquet file"):
        curate(spark, tmp_path / "pool", tmp_path / "run", head_vocab)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no pool files"):
        curate(spark, tmp_path / "empty", tmp_path / "run2", head_vocab)
    assert not (tmp_path / "run" / "ingest").exists()


@pytest.mark.real_data
def test_vocabulary_with_duplicates_is_a_clear_error(spark, tmp_path):
    (tmp_path / "v.txt").write_text("dog\ncat\ndog\n")
    with pytest.raises(UserInputError, match=r"v.txt: line 3 duplicates line 1"):
        curate(spark, LAION, tmp_path / "run", tmp_path / "v.txt")


def test_pool_given_uids_that_repeat_are_rejected(spark, tmp_path, head_vocab):
    pq.write_table(pa.table({"key": ["k1", "k2", "k1"], "url": ["http://a/1", "http://a/2", "http://a/3"],
                             "caption": ["the dog", "the cat", "the bird"]}), tmp_path / "pool.parquet")
    manifests = curate(spark, tmp_path / "pool.parquet", tmp_path / "run", head_vocab)
    assert manifests["ingest"]["rejected"] == {"duplicate_uid": 1}
    kept = pq.read_table(tmp_path / "run" / "ingest").column("caption").to_pylist()
    assert sorted(kept) == ["the cat", "the dog"]  # of the two k1 rows, the smaller url is kept


def test_a_key_whose_hashes_collide_but_values_differ_marks_nothing(spark):
    from pipeline.spark.ingest import _mark_duplicates
    rows = spark.createDataFrame([("u1", "http://a/1", "dog", "f", 0), ("u2", "http://a/2", "dog", "f", 1)],
                                 "uid string, url string, caption string, source_file string, source_row long")
    assert _mark_duplicates(rows, {"duplicate": ["url", "caption"]}, "url_caption", []) is None
    marked = _mark_duplicates(rows, {"duplicate": ["caption"]}, "url_caption", [])
    assert sorted((row["uid"], row["reason"]) for row in marked.collect()) == [("u1", None), ("u2", "duplicate")]


@pytest.mark.real_data
def test_target_size_is_solved_on_spark(spark, tmp_path, head_vocab):
    config = TextCurationConfig(pool=str(LAION), metadata=str(head_vocab), out=str(tmp_path / "run"),
                                balance=BalanceConfig(t=None, target_size=4000, seed=0))
    manifests = curate_text(spark, config)
    assert manifests["selection"]["expected_size"] == pytest.approx(4000, rel=1e-3)
    # sampling noise: the variance of the size is sum p(1-p) <= sum p = 4000
    assert abs(manifests["selection"]["rows_out"] - 4000) <= 3 * 4000 ** 0.5
    assert len(selected_uids(tmp_path / "run")) == manifests["selection"]["rows_out"]


def test_personal_data_is_always_counted_and_dropped_when_asked(spark, tmp_path):
    pq.write_table(pa.table({"url": ["http://a/1", "http://a/2", "http://a/3"],
                             "caption": ["a dog", "mail jane@example.com", "+44 20 7946 0958 a cat"]}),
                   tmp_path / "pool.parquet")
    kept = run_ingest(spark, str(tmp_path / "pool.parquet"), tmp_path / "kept", IngestConfig())
    assert kept["rows_out"] == 3 and kept["rejected"] == {} and kept["pii_captions"] == 2
    dropped = run_ingest(spark, str(tmp_path / "pool.parquet"), tmp_path / "dropped", IngestConfig(drop_pii=True))
    assert dropped["rows_out"] == 1 and dropped["rejected"] == {"pii": 2} and dropped["pii_captions"] == 2
