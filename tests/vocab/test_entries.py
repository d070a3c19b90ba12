import gzip
import hashlib
import json

import pytest

from pipeline.errors import UserInputError
from pipeline.vocab.entries import entries_fingerprint, load_entries


def test_text_json_and_gzip_give_the_same_entries(tmp_path):
    words = ["dog", "hot dog", "St. Louis", "café"]
    (tmp_path / "v.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    (tmp_path / "v.json").write_text(json.dumps(words), encoding="utf-8")
    (tmp_path / "v.txt.gz").write_bytes(gzip.compress(("\n".join(words)).encode()))
    (tmp_path / "v.json.gz").write_bytes(gzip.compress(json.dumps(words).encode()))
    for name in ("v.txt", "v.json", "v.txt.gz", "v.json.gz"):
        assert load_entries(tmp_path / name) == words


def test_duplicate_entry_names_file_and_both_lines(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("dog\ncat\ndog\n")
    with pytest.raises(UserInputError, match=r"vocab.txt: line 3 duplicates line 1 \('dog'\)"):
        load_entries(path)


def test_duplicate_in_json_names_the_entry_index(tmp_path):
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(["a", "b", "a"]))
    with pytest.raises(UserInputError, match=r"metadata.json: entry 2 duplicates entry 0"):
        load_entries(path)


@pytest.mark.parametrize("content, message", [
    ("dog\n\ncat\n", r"line 2 is empty"),
    ("dog\r\n \t\r\ncat\r\n", r"line 2 is empty"),
    ('["dog", "  "]', r"entry 1 is empty"),
    ("dog\ncat\n  \ndog\n", r"line 3 is empty"),
    ("", r"has no entries"),
    ('["dog", 3]', r"entry 1 is int"),
    ('{"dog": 1}', r"invalid JSON|must be a list"),
])
def test_bad_vocabularies_are_clear_errors(tmp_path, content, message):
    path = tmp_path / ("v.json" if content.startswith(("[", "{")) else "v.txt")
    path.write_text(content)
    with pytest.raises(UserInputError, match=message):
        load_entries(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="cannot read vocabulary"):
        load_entries(tmp_path / "nope.txt")


def test_shipped_vocabulary_is_real_and_distinct(entries):
    assert len(entries) > 400_000
    assert len(set(entries)) == len(entries)
    assert {"dog", "hot dog", "the", "new york"} <= set(entries)


def test_windows_line_ends_and_padding_are_not_part_of_entries(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"dog\r\n  hot dog \r\ncat")
    assert load_entries(path) == ["dog", "hot dog", "cat"]


def test_fingerprint_is_the_sha256_of_the_entries_one_per_line():
    """Run directories made before keep their stage fingerprints: the digest's definition must not drift."""
    assert entries_fingerprint(["dog", "café"]) == hashlib.sha256("dog\ncafé\n".encode()).hexdigest()[:16]
    assert entries_fingerprint(["dog", "cat"]) != entries_fingerprint(["cat", "dog"])
