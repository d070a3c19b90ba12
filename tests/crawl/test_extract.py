"""Reading crawl files: the real Common Crawl page's images, the warcio project's broken files, generated
WARC/WAT pairs. Every bad input ends as a counted reason, never an exception."""

import gzip
import random

import pyarrow as pa
import pytest
from fastwarc.warc import WarcRecordType

from pipeline.crawl import links as crawl_links
from pipeline.crawl import pages as crawl_pages
from pipeline.crawl.extract import ExtractConfig, FileExtraction
from pipeline.crawl.synthetic import SyntheticPage, pages_from_captions, warc_record, write_crawl
from tests.helpers import SHARED

CRAWL = SHARED / "crawl"
pytestmark = pytest.mark.real_data

# The <img> tags of https://an.wikipedia.org/wiki/Escopete that have alt text, as the page writes them
ESCOPETE_IMAGES = {
    "https://an.wikipedia.org/static/images/mobile/copyright/wikipedia-wordmark-an.svg": "Biquipedia",
    "https://an.wikipedia.org/static/images/mobile/copyright/wikipedia-tagline-an.svg": "A enciclopedia libre",
    "https://upload.wikimedia.org/wikipedia/commons/thumb/0/0a/Escudo_de_Escopete_%28Guadalajara%29.svg/"
    "70px-Escudo_de_Escopete_%28Guadalajara%29.svg.png": "Escudo d'armas",  # alt="Escudo d&#39;armas"
    "https://upload.wikimedia.org/wikipedia/commons/thumb/9/9c/Castilla-La_Mancha-loc.svg/"
    "250px-Castilla-La_Mancha-loc.svg.png": "Escopete ubicada en Castiella-La Mancha",
    "https://upload.wikimedia.org/wikipedia/commons/thumb/d/d2/Map_pointer.svg/12px-Map_pointer.svg.png": "Escopete",
    "https://an.wikipedia.org/static/images/footer/wikimedia-button.png": "Wikimedia Foundation",
    "https://an.wikipedia.org/static/images/footer/poweredby_mediawiki_88x31.png": "Powered by MediaWiki",
}


def read_all(location, config=ExtractConfig()):
    extraction = FileExtraction(str(location), config)
    parts = list(extraction.batches())
    links = pa.concat_tables([links for links, _ in parts])
    rejects = pa.concat_tables([rejects for _, rejects in parts])
    return links, rejects, extraction.report


def pairs(links: pa.Table) -> set[tuple[str, str]]:
    return set(zip(links.column("url").to_pylist(), links.column("caption").to_pylist()))


def test_the_real_common_crawl_page_gives_every_image_with_alt_text():
    links, rejects, report = read_all(CRAWL / "whirlwind.warc.gz")
    assert dict(pairs(links)) == ESCOPETE_IMAGES
    assert set(links.column("page_url").to_pylist()) == {"https://an.wikipedia.org/wiki/Escopete"}
    assert report.links == 13 == links.num_rows + rejects.num_rows  # every <img> accounted for
    assert set(rejects.column("reason").to_pylist()) == {"empty_alt"}
    assert report.outcome == "read" and report.records["page"] == 1


def test_the_real_wat_file_parses_and_its_request_metadata_is_not_html():
    links, rejects, report = read_all(CRAWL / "whirlwind.warc.wat.gz")
    assert links.num_rows == rejects.num_rows == 0
    assert report.outcome == "read" and report.records == {"not_html": 1}


@pytest.mark.parametrize("name, outcome", [
    ("example.warc.gz", "read"),
    ("example-iana.org-chunked.warc", "read"),
    ("example-wrong-chunks.warc.gz", "read"),
    ("example-bad-non-chunked.warc.gz", "read"),
    ("example-wget-bad-target-uri.warc.gz", "read"),
    ("example-trunc.warc", "stopped"),
    ("example.arc.gz", "failed"),  # ARC, not WARC
    ("LICENSE", "failed"),  # not a crawl file at all
])
def test_the_warcio_test_files_each_end_with_an_outcome(name, outcome):
    _, _, report = read_all(CRAWL / "warcio" / name)
    assert report.outcome == outcome
    if outcome == "failed":
        assert report.error.startswith(str(CRAWL / "warcio" / name))
    if outcome == "stopped":
        assert "offset" in report.stopped


def test_a_cut_gzip_member_stops_the_file_with_a_reason(tmp_path):
    whole = (CRAWL / "whirlwind.warc.gz").read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(whole[:len(whole) - 3000])
    links, _, report = read_all(cut)
    assert report.outcome == "stopped" and report.records["truncated_record"] == 1
    assert links.num_rows == 0  # the cut page is not half-read


def test_an_empty_file_and_a_missing_one(tmp_path):
    (tmp_path / "empty.warc.gz").write_bytes(b"")
    assert read_all(tmp_path / "empty.warc.gz")[2].outcome == "empty"
    missing = read_all(tmp_path / "gone.warc.gz")[2]
    assert missing.outcome == "failed" and str(tmp_path / "gone.warc.gz") in missing.error


def write_pages(tmp_path, pages, name="crawl"):
    warc, wat = tmp_path / f"{name}.warc.gz", tmp_path / f"{name}.warc.wat.gz"
    write_crawl(pages, warc, wat)
    return warc, wat


def test_a_warc_and_its_wat_records_give_the_same_pairs(tmp_path, captions):
    warc, wat = write_pages(tmp_path, pages_from_captions(captions[:400], seed=3))
    from_warc, warc_rejects, _ = read_all(warc)
    from_wat, wat_rejects, _ = read_all(wat)
    assert pairs(from_warc) == pairs(from_wat)
    assert len(pairs(from_warc)) > 350  # captions repeat a little in the real files
    assert sorted(warc_rejects.column("reason").to_pylist()) == sorted(wat_rejects.column("reason").to_pylist())
    assert {"empty_alt", "data_uri"} <= set(warc_rejects.column("reason").to_pylist())
    assert all(url.startswith(("https://", "http://")) and "#" not in url
               for url in from_warc.column("url").to_pylist())


def test_without_the_compiled_modules_extraction_gives_the_same_tables(tmp_path, captions, monkeypatch):
    _, wat = write_pages(tmp_path, pages_from_captions(captions[:400], seed=5))
    compiled = read_all(wat, ExtractConfig(titles=True))
    monkeypatch.setattr(crawl_pages, "metacurate_wat", None)  # as on an executor that has only the shipped zip
    monkeypatch.setattr(crawl_links, "metacurate_links", None)
    assert read_all(wat, ExtractConfig(titles=True)) == compiled


def test_base_href_and_entities_resolve_the_same_in_html_and_wat(tmp_path):
    page = SyntheticPage("https://news.example/a/b.html", "/static/", [("x.jpg", 'Fish & "chips" <3'),
                                                                    ("//img.example/y.jpg", "y")])
    warc, wat = write_pages(tmp_path, [page])
    expected = {("https://news.example/static/x.jpg", 'Fish & "chips" <3'), ("https://img.example/y.jpg", "y")}
    assert pairs(read_all(warc)[0]) == pairs(read_all(wat)[0]) == expected


def test_a_wat_record_that_is_not_json_is_counted_and_the_rest_is_read(tmp_path, captions):
    _, wat = write_pages(tmp_path, pages_from_captions(captions[:30]))
    members = gzip.decompress(wat.read_bytes()).split(b"WARC/1.1\r\n")[1:]
    pages = len(members) // 2  # each page: its request's metadata, then its response's
    broken = members[3].replace(b'{"Container"', b'{"Container!', 1)  # same length: only the JSON breaks
    spoiled = tmp_path / "spoiled.warc.wat.gz"
    spoiled.write_bytes(b"".join(gzip.compress(b"WARC/1.1\r\n" + member)
                                 for member in [*members[:3], broken, *members[4:]]))
    links, _, report = read_all(spoiled)
    assert report.records == {"invalid_json": 1, "page": pages - 1, "not_html": pages}
    assert report.outcome == "read" and links.num_rows > 0


def html_record(path, body: bytes, content_type: str = "text/html; charset=utf-8"):
    """One WARC file holding one HTML response."""
    response = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\r\n".encode() + body
    path.write_bytes(warc_record(WarcRecordType.response, "https://fr.example/", "application/http; msgtype=response",
                             response, random.Random(0)))
    return path


def test_a_page_in_a_charset_it_does_not_declare_is_decoded_and_counted(tmp_path):
    body = '<html><body><img src="/a.jpg" alt="Crème brûlée à la française"></body></html>'.encode("latin-1")
    links, _, report = read_all(html_record(tmp_path / "latin.warc.gz", body))
    assert links.column("caption").to_pylist() == ["Crème brûlée à la française"]
    assert report.records["charset_mismatch"] == 1


def test_a_response_that_is_not_html_is_counted(tmp_path):
    _, _, report = read_all(html_record(tmp_path / "image.warc.gz", b"\x89PNG\r\n", "image/png"))
    assert report.records == {"not_html": 1}


def test_format_chooses_the_records_read(tmp_path, captions):
    warc, wat = write_pages(tmp_path, pages_from_captions(captions[:40]))
    assert read_all(wat, ExtractConfig(format="warc"))[2].records["page"] == 0
    assert read_all(warc, ExtractConfig(format="wat"))[2].records["page"] == 0
    assert read_all(warc, ExtractConfig(format="warc"))[2].records["page"] == 5


def test_titles_are_kept_when_asked(tmp_path):
    path = html_record(tmp_path / "t.warc.gz", b'<img src="/a.jpg" alt="a dog" title="Rex at the beach">')
    assert read_all(path)[0].column("title").to_pylist() == [None]
    assert read_all(path, ExtractConfig(titles=True))[0].column("title").to_pylist() == ["Rex at the beach"]


def test_language_identification_can_be_left_out(tmp_path):
    path = html_record(tmp_path / "l.warc.gz", b'<img src="/a.jpg" alt="ein Hund rennt im Park">')
    assert read_all(path)[0].column("language").to_pylist() == ["de"]
    assert read_all(path, ExtractConfig(language_id=False))[0].column("language").to_pylist() == [None]
