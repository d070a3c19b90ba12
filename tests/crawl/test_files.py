"""Which files a crawl job reads: files, folders, and Common Crawl paths listings with a prefix."""

import gzip

import pytest

from pipeline.crawl.files import crawl_files, open_stream
from pipeline.errors import UserInputError


@pytest.fixture
def crawl_folder(tmp_path):
    for name in ("b/x.warc.wat.gz", "a.warc.gz", "c.warc", "notes.txt", "_hidden.warc.gz", "b/.part.warc.gz"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_a_folder_gives_its_crawl_files_in_order(crawl_folder):
    assert crawl_files([str(crawl_folder)]) == [str(crawl_folder / name)
                                                for name in ("a.warc.gz", "b/x.warc.wat.gz", "c.warc")]


def test_a_paths_listing_names_files_under_the_prefix(tmp_path, crawl_folder):
    listing = tmp_path / "wat.paths.gz"
    listing.write_bytes(gzip.compress(b"crawl-data/CC-MAIN-2024-22/x.warc.wat.gz\n\ncrawl-data/y.warc.wat.gz\n"))
    assert crawl_files([str(listing)], prefix="s3a://commoncrawl/") == [
        "s3a://commoncrawl/crawl-data/CC-MAIN-2024-22/x.warc.wat.gz", "s3a://commoncrawl/crawl-data/y.warc.wat.gz"]
    assert crawl_files([str(listing)], prefix=f"file://{tmp_path}")[0] == (
        f"file://{tmp_path}/crawl-data/CC-MAIN-2024-22/x.warc.wat.gz")


def test_a_listing_without_prefix_and_a_missing_input_are_errors_naming_them(tmp_path, crawl_folder):
    listing = tmp_path / "wat.paths"
    listing.write_text("crawl-data/x.warc.wat.gz\n")
    with pytest.raises(UserInputError, match="wat.paths: a paths listing .* --prefix"):
        crawl_files([str(listing)])
    with pytest.raises(UserInputError, match="gone.warc.gz: no such file"):
        crawl_files([str(tmp_path / "gone.warc.gz")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="empty: no crawl files"):
        crawl_files([str(tmp_path / "empty")])


def test_a_file_uri_and_a_path_open_the_same_bytes(tmp_path):
    (tmp_path / "f.warc").write_bytes(b"WARC/1.1\r\n")
    with open_stream(str(tmp_path / "f.warc")) as plain, open_stream(f"file://{tmp_path}/f.warc") as uri:
        assert plain.read() == uri.read() == b"WARC/1.1\r\n"
    with pytest.raises(OSError):
        open_stream("nosuchfs://bucket/x.warc.gz")
