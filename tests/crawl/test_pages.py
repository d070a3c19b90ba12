"""A WAT record's links are read in one pass; records of odd shape are read loosely, broken ones rejected. Each
test runs with the compiled scan (native/metacurate_wat.pyx) and with msgspec alone, as where it is not built."""

import json

import pytest

from pipeline.crawl import pages
from pipeline.crawl.pages import PageError, page_from_wat


@pytest.fixture(autouse=True, params=["compiled scan", "msgspec"])
def reading(request, monkeypatch):
    if request.param == "msgspec":
        monkeypatch.setattr(pages, "metacurate_wat", None)
    return request.param


def wat_record(html_metadata) -> bytes:
    response = {"Headers": {"Content-Type": "text/html"}, "HTML-Metadata": html_metadata}
    return json.dumps({"Envelope": {"Payload-Metadata": {"HTTP-Response-Metadata": response}}}).encode()


def test_image_links_and_the_base_come_out_of_a_common_crawl_shaped_record():
    page = page_from_wat(wat_record({"Head": {"Base": "/static/", "Title": "t"}, "Links": [
        {"path": "A@/href", "url": "/about", "text": "About"},
        {"path": "IMG@/src", "url": "a.jpg", "alt": "a dog", "extra": {"nested": [1, 2]}},
        {"path": "IMG@/src", "url": "b.jpg"}]}))
    assert page.base_href == "/static/"
    assert (page.srcs, page.alts, page.titles) == (["a.jpg", "b.jpg"], ["a dog", None], [None, None])


def test_the_page_url_is_the_records_warc_target_uri_where_it_names_one():
    record = json.loads(wat_record({"Links": []}))
    assert page_from_wat(json.dumps(record).encode()).url is None  # extraction then asks the WARC header
    record["Envelope"]["WARC-Header-Metadata"] = {"WARC-Type": "response", "WARC-Target-URI": "https://a.example/p"}
    assert page_from_wat(json.dumps(record).encode()).url == "https://a.example/p"


def test_a_record_with_odd_types_where_the_links_are_is_read_loosely():
    page = page_from_wat(wat_record({"Head": {"Base": 7}, "Links": [
        "not a link", {"path": "IMG@/src", "url": 12, "alt": ["x"]},
        {"path": "IMG@/src", "url": "c.jpg", "alt": "a cat"}]}))
    assert page.base_href is None
    assert (page.srcs, page.alts, page.titles) == (["12", "c.jpg"], [None, "a cat"], [None, None])


@pytest.mark.parametrize("html_metadata", [None, "text", [1, 2]])
def test_metadata_that_is_no_object_describes_no_page(html_metadata):
    assert page_from_wat(wat_record(html_metadata)) is None


@pytest.mark.parametrize("payload", [
    wat_record({"Links": []})[:-3],  # cut short
    wat_record({"Links": [{"path": "IMG@/src", "url": "PLACE"}]}).replace(b"PLACE", b"\xff\xfe"),  # not UTF-8
    b'{"Envelope": {"a": [1, 2}, "HTML-Metadata": {}}',  # broken where nothing is read
    wat_record({"Head": 7, "Links": [], "Title": "PLACE"}).replace(b"PLACE", b"\xff"),  # odd shape and not UTF-8
])
def test_records_whose_json_does_not_parse_get_the_reason(payload):
    with pytest.raises(PageError) as raised:
        page_from_wat(payload)
    assert raised.value.reason == "invalid_json"

