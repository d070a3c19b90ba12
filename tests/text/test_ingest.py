"""Pool reading and row validation without Spark: every row ends as a row or a reject with a reason."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError
from pipeline.text.ingest import IngestConfig, any_repeat, canonicalize, duplicate_keys, key_hashes
from pipeline.text.pool import read_unit, resolve
from tests.helpers import CC3M, LAION


def read_units(units, columns):
    """Rows and rejects of the given units, as dicts."""
    good, bad = [], []
    for unit in units:
        for raw in read_unit(unit, columns):
            rows, rejects = canonicalize(raw, IngestConfig())
            good += rows.to_pylist()
            bad += rejects.to_pylist()
    return good, bad


def ingest_all(pool_path, **columns):
    return read_units(*resolve(pool_path, **columns))


def write_bad_parquet(path):
    table = pa.table({
        "url": pa.array([b"http://a/1.jpg", b"http://a/2.jpg", None, b"http://a/4.jpg", b"http://a/5.jpg",
                         b"http://a/6.jpg", b"http://a/7.jpg"], pa.binary()),
        "caption": pa.array([b"a dog", None, b"a cat", b"   ", b"caf\xe9 latte", b"x" * 1_000_000, b"ok"],
                            pa.binary()),
    })
    pq.write_table(table, path)


def test_every_bad_row_is_rejected_with_its_reason_file_and_row(tmp_path):
    write_bad_parquet(tmp_path / "pool.parquet")
    good, bad = ingest_all(tmp_path / "pool.parquet")
    assert [row["caption"] for row in good] == ["a dog", "ok"]
    reasons = {row["source_row"]: row["reason"] for row in bad}
    assert reasons == {1: "missing_caption", 2: "missing_url", 3: "missing_caption", 4: "invalid_utf8",
                       5: "caption_too_long"}
    assert all(row["source_file"].endswith("pool.parquet") for row in bad)
    assert len(good) + len(bad) == 7


def test_text_formats_report_line_numbers(tmp_path):
    (tmp_path / "pool.tsv").write_bytes(
        b"caption\turl\na dog\thttp://a/1\nbad \xff bytes\thttp://a/2\nonly one field\n\thttp://a/4\n")
    (tmp_path / "more.jsonl").write_bytes((
        json.dumps({"url": "http://b/1", "caption": "a cat"}) + "\n{not json\n"
        + json.dumps({"url": "http://b/3", "caption": None}) + "\n").encode()
        + b'{"url": "http://b/4", "caption": "caf\xe9"}\n')
    good, bad = ingest_all(tmp_path)
    assert sorted(row["caption"] for row in good) == ["a cat", "a dog"]
    found = {(row["source_file"].rsplit("/", 1)[1], row["source_row"], row["reason"]) for row in bad}
    assert found == {("pool.tsv", 3, "invalid_utf8"), ("pool.tsv", 4, "malformed_row"),
                     ("pool.tsv", 5, "missing_caption"), ("more.jsonl", 2, "malformed_row"),
                     ("more.jsonl", 3, "missing_caption"), ("more.jsonl", 4, "invalid_utf8")}


@pytest.mark.real_data
def test_uid_is_stable_and_content_based():
    good_a, _ = ingest_all(LAION)
    good_b, _ = ingest_all(LAION)
    assert [row["uid"] for row in good_a] == [row["uid"] for row in good_b]
    assert all(len(row["uid"]) == 32 for row in good_a)


@pytest.mark.real_data
def test_headerless_cc3m_tsv_is_understood():
    units, columns = resolve(CC3M)
    assert (columns.url, columns.caption) == ("col1", "col0")
    good, bad = ingest_all(CC3M)
    assert len(good) + len(bad) == sum(1 for _ in open(CC3M, encoding="utf-8"))
    assert good[0]["url"].startswith("http")


def test_pool_uid_column_is_used(tmp_path):
    pq.write_table(pa.table({"key": ["000000001", "0" * 31 + "A"], "url": ["http://a", "http://b"],
                             "caption": ["x", "y"]}), tmp_path / "i2d.parquet")
    good, _ = ingest_all(tmp_path / "i2d.parquet")
    assert good[1]["uid"] == "0" * 31 + "a"
    assert good[0]["uid"] != good[1]["uid"] and len(good[0]["uid"]) == 32


def test_missing_column_names_the_file(tmp_path):
    pq.write_table(pa.table({"url": ["http://a"], "description": ["x"]}), tmp_path / "pool.parquet")
    with pytest.raises(UserInputError, match=r"pool.parquet: cannot find the caption column .*--caption-col"):
        resolve(tmp_path / "pool.parquet")
    with pytest.raises(UserInputError, match=r"pool.parquet: no column 'text'"):
        resolve(tmp_path / "pool.parquet", caption_col="text")


def test_corrupt_parquet_names_the_file(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(UserInputError, match=r"broken.parquet: not a readable Parquet file"):
        resolve(tmp_path)


def test_empty_pool_is_a_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="no pool files"):
        resolve(tmp_path)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserInputError, match="the pool is empty"):
        resolve(tmp_path)


def test_img2dataset_output_folder_reads_its_parquet_only(tmp_path):
    pq.write_table(pa.table({
        "url": ["http://a/1.jpg", "http://a/2.jpg"], "caption": ["a dog", "a cat"],
        "key": ["000000000", "000000001"], "status": ["success", "failed_to_download"],
        "error_message": [None, "404"], "width": [256, None], "height": [256, None],
    }), tmp_path / "00000.parquet")
    (tmp_path / "00000_stats.json").write_text(json.dumps({"count": 2, "successes": 1}, indent=4))
    (tmp_path / "00000.tar").write_bytes(b"\0" * 1024)
    units, columns = resolve(tmp_path)
    assert [Path(unit.path).name for unit in units] == ["00000.parquet"]
    assert (columns.url, columns.caption, columns.uid) == ("url", "caption", "key")
    good, bad = ingest_all(tmp_path)
    assert [row["caption"] for row in good] == ["a dog", "a cat"] and bad == []


def test_jsonl_whose_first_line_is_malformed_is_still_read(tmp_path):
    (tmp_path / "pool.jsonl").write_text('{broken\n{"url": "http://a/1", "caption": "a dog"}\n')
    good, bad = ingest_all(tmp_path / "pool.jsonl")
    assert [row["caption"] for row in good] == ["a dog"]
    assert [(row["source_row"], row["reason"]) for row in bad] == [(1, "malformed_row")]


def test_jsonl_without_any_record_is_a_clear_error(tmp_path):
    (tmp_path / "pool.jsonl").write_text("{broken\nnot json either\n")
    with pytest.raises(UserInputError, match=r"pool.jsonl: cannot find the url column"):
        resolve(tmp_path / "pool.jsonl")


@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_large_text_files_are_read_in_slices_with_the_same_rows_and_line_numbers(tmp_path, fmt):
    lines = []
    for i in range(300):
        caption = "bad \udcff bytes" if i % 97 == 5 else f"caption number {i} of a long pool"
        if fmt == "tsv":
            lines.append("only one field" if i % 50 == 7 else f"{caption}\thttp://a/{i}.jpg")
        else:
            lines.append("{broken" if i % 50 == 7 else json.dumps({"url": f"http://a/{i}", "caption": caption}))
    path = tmp_path / f"pool.{fmt}"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
    whole_units, _ = resolve(path)
    split_units, columns = resolve(path, split_bytes=700)
    assert len(whole_units) == 1 and len(split_units) > 10
    assert split_units[0].byte_range[0] == 0 and split_units[-1].byte_range[1] == path.stat().st_size
    assert read_units(split_units, columns) == read_units(whole_units, columns)
    good, bad = read_units(split_units, columns)
    assert len(good) + len(bad) == 300
    assert {row["source_row"] for row in bad} == {i + 1 for i in range(300) if i % 97 == 5 or i % 50 == 7}


def test_split_tsv_with_header_reads_the_header_once(tmp_path):
    path = tmp_path / "pool.tsv"
    path.write_text("caption\turl\n" + "".join(f"photo {i}\thttp://a/{i}\n" for i in range(200)))
    units, columns = resolve(path, split_bytes=500)
    assert len(units) > 3 and [unit.has_header for unit in units].count(True) == 1
    good, _ = read_units(units, columns)
    assert [row["caption"] for row in good] == [f"photo {i}" for i in range(200)]
    assert [row["source_row"] for row in good] == list(range(2, 202))


def test_duplicate_keys_follow_the_dedup_key_and_the_uid_source():
    assert duplicate_keys("url_caption", pool_uids=False) == {"duplicate": ["uid"]}  # the content uid
    assert duplicate_keys("url_caption", pool_uids=True) == {"duplicate": ["url", "caption"], "duplicate_uid": ["uid"]}
    assert duplicate_keys("url", pool_uids=False) == {"duplicate": ["url"]}
    assert duplicate_keys("none", pool_uids=False) == {"duplicate_uid": ["uid"]}


def test_key_hashes_repeat_where_the_keys_do():
    rows = pa.table({"uid": ["a", "b", "c"], "url": ["u1", "u1", "u2"], "caption": ["x", "y", "x"]})
    hashes = key_hashes(rows, {"duplicate": ["url", "caption"], "duplicate_uid": ["uid"], "by_url": ["url"]})
    assert hashes.column_names == ["duplicate", "duplicate_uid", "by_url"]
    assert hashes.schema.field("by_url").type == pa.uint64() and hashes.num_rows == 3
    assert not any_repeat(hashes.column("duplicate").to_numpy())
    assert not any_repeat(hashes.column("duplicate_uid").to_numpy())
    assert any_repeat(hashes.column("by_url").to_numpy())
    assert not any_repeat(key_hashes(rows.slice(0, 0), {"duplicate": ["uid"]}).column("duplicate").to_numpy())


def test_captions_of_only_unicode_whitespace_are_missing_and_invisible_characters_are_not(tmp_path):
    captions = ["", " \t\n", "\u00a0", "\u3000 \u2003", "\u200b", "a\u00a0dog", None]
    pq.write_table(pa.table({"url": [f"http://a/{i}" for i in range(len(captions))], "caption": captions}),
                   tmp_path / "pool.parquet")
    good, bad = ingest_all(tmp_path / "pool.parquet")
    assert {row["source_row"]: row["reason"] for row in bad} == {row: "missing_caption" for row in (0, 1, 2, 3, 6)}
    assert [row["caption"] for row in good] == ["\u200b", "a\u00a0dog"]  # a zero-width space is not whitespace


def test_captions_with_personal_data_are_rejected_only_when_asked(tmp_path):
    pq.write_table(pa.table({"url": ["http://a/1", "http://a/2", "http://a/3"],
                             "caption": ["a dog", "mail jane@example.com", "call 555-123-4567"]}),
                   tmp_path / "pool.parquet")
    units, columns = resolve(tmp_path / "pool.parquet")
    [raw] = list(read_unit(units[0], columns))
    rows, rejects = canonicalize(raw, IngestConfig())
    assert rows.num_rows == 3 and rejects.num_rows == 0
    rows, rejects = canonicalize(raw, IngestConfig(drop_pii=True))
    assert rows.column("caption").to_pylist() == ["a dog"]
    assert [(row["source_row"], row["reason"], row["detail"]) for row in rejects.to_pylist()] == [
        (1, "pii", "caption holds an e-mail address"), (2, "pii", "caption holds a phone number")]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_a_language_column_rides_along_and_a_pool_without_one_has_none(tmp_path, fmt):
    rows = [{"url": "http://a/1.jpg", "caption": "ein Hund", "language": "de"},
            {"url": "http://a/2.jpg", "caption": "a dog", "language": None},
            {"url": "http://a/3.jpg", "caption": "", "language": "en"}]
    path = tmp_path / f"pool.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    good, bad = ingest_all(path)
    assert [(row["caption"], row["language"]) for row in good] == [("ein Hund", "de"), ("a dog", None)]
    assert [reject["reason"] for reject in bad] == ["missing_caption"]
    without = tmp_path / "plain.jsonl"
    without.write_text(json.dumps({"url": "http://a/1.jpg", "caption": "a dog"}) + "\n")
    assert "language" not in ingest_all(without)[0][0]


def test_hidden_folders_of_a_pool_folder_are_not_read(tmp_path):
    pq.write_table(pa.table({"url": ["http://a/1.jpg"], "caption": ["a dog"]}), tmp_path / "part-0.parquet")
    (tmp_path / "_rejects").mkdir()
    pq.write_table(pa.table({"url": ["http://a/2.jpg"], "caption": ["rejected"]}), tmp_path / "_rejects" / "p.parquet")
    (tmp_path / ".tmp").mkdir()
    pq.write_table(pa.table({"url": ["http://a/3.jpg"], "caption": ["half"]}), tmp_path / ".tmp" / "p.parquet")
    assert [row["caption"] for row in ingest_all(tmp_path)[0]] == ["a dog"]
