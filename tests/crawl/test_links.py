"""Link urls resolve as the URL standard says (urljoin with the page's <base href>); unusable ones get reasons."""

from urllib.parse import urljoin

import pytest

from pipeline.crawl.links import LinkLimits, clean_caption, page_base, resolve_url

PAGE = "https://a.example/dir/page.html"

RESOLVED = [  # (page, <base href>, src, expected url)
    (PAGE, None, "//host.example/x.jpg", "https://host.example/x.jpg"),
    ("http://a.example/dir/page.html", None, "//host.example/x.jpg", "http://host.example/x.jpg"),
    (PAGE, None, "/x.jpg", "https://a.example/x.jpg"),
    (PAGE, None, "../x.jpg", "https://a.example/x.jpg"),
    (PAGE, None, "x.jpg", "https://a.example/dir/x.jpg"),
    (PAGE, None, "?q=1", "https://a.example/dir/page.html?q=1"),
    (PAGE, None, "x.jpg#part", "https://a.example/dir/x.jpg"),
    (PAGE, None, "https://other.example/y.png", "https://other.example/y.png"),
    (PAGE, None, "bilder/größe.jpg", "https://a.example/dir/bilder/größe.jpg"),
    (PAGE, None, "/%E5%9B%BE/猫.jpg", "https://a.example/%E5%9B%BE/猫.jpg"),
    (PAGE, "https://cdn.example/assets/", "x.jpg", "https://cdn.example/assets/x.jpg"),
    (PAGE, "https://cdn.example/assets", "x.jpg", "https://cdn.example/x.jpg"),  # no trailing slash: a file
    (PAGE, "/static/", "img/x.jpg", "https://a.example/static/img/x.jpg"),  # a relative base, against the page
    (PAGE, "https://cdn.example/a/b/", "../x.jpg", "https://cdn.example/a/x.jpg"),
    (PAGE, "https://cdn.example/a/", "//host.example/x.jpg", "https://host.example/x.jpg"),
    (PAGE, None, "  https://a.example/x\n.jpg\t", "https://a.example/x.jpg"),  # the standard drops tab/newline
]


@pytest.mark.parametrize("page, base_href, src, expected", RESOLVED)
def test_urls_resolve_as_urljoin_does(page, base_href, src, expected):
    url, reason = resolve_url(src, page_base(page, base_href))
    assert reason is None
    assert url == expected
    if "\n" not in src and "#" not in src:  # the reference: the standard library's urljoin
        assert url == urljoin(urljoin(page, base_href) if base_href else page, src.strip())


@pytest.mark.parametrize("page, src, reason", [
    (PAGE, "data:image/gif;base64,R0lGODlhAQABAAAAACw=", "data_uri"),
    (PAGE, " DATA:image/png;base64,AAAA", "data_uri"),
    (PAGE, "javascript:void(0)", "unsupported_scheme"),
    (PAGE, "ftp://files.example/x.jpg", "unsupported_scheme"),
    (PAGE, "file:///etc/passwd", "unsupported_scheme"),
    ("file:///home/page.html", "x.jpg", "relative_unresolvable"),
    ("metadata://gnu.org/software/wget/warc/MANIFEST.txt", "/x.jpg", "relative_unresolvable"),
    ("", "x.jpg", "relative_unresolvable"),
    (PAGE, "https://a.example/" + "x" * 3000 + ".jpg", "url_too_long"),
])
def test_unusable_links_get_their_reason(page, src, reason):
    assert resolve_url(src, page_base(page, None)) == (None, reason)


def test_captions_are_whitespace_normalised_and_bounded():
    assert clean_caption("  a\n\tcat   on\u00a0a mat ") == ("a cat on a mat", None)
    assert clean_caption(None) == (None, "empty_alt")
    assert clean_caption(" \n ") == (None, "empty_alt")
    assert clean_caption("x" * 11, LinkLimits(max_caption_chars=10)) == (None, "caption_too_long")
