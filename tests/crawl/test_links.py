"""Link urls resolve as the URL standard says (urljoin with the page's <base href>); unusable ones get reasons.
Each test runs with the compiled finishing (native/metacurate_links.pyx) and with urljoin alone, as where it is not
built."""

import random
from urllib.parse import urljoin

import numpy as np
import pytest

from pipeline.crawl import links as link_module
from pipeline.crawl.links import LinkLimits, finish_links, page_base


@pytest.fixture(autouse=True, params=["compiled", "urljoin"])
def finishing(request, monkeypatch):
    if request.param == "urljoin":
        monkeypatch.setattr(link_module, "metacurate_links", None)
    return request.param

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


def resolved(links: list[tuple[str, str | None, str]]) -> list[tuple[str | None, str | None]]:
    """(url, reason) of each (page, <base href>, src), finished as one batch as extraction does."""
    bases = [page_base(page, base_href) for page, base_href, _ in links]
    finished = finish_links([src for _, _, src in links], ["alt"] * len(links), np.arange(len(links)), bases)
    return per_link(finished, finished.url)


def per_link(finished, values) -> list[tuple[str | None, str | None]]:
    """(value, None) for each link that is a row, (None, reason) for the others."""
    values, reasons = iter(values.to_pylist()), iter(finished.reason.to_pylist())
    return [(next(values), None) if kept else (None, next(reasons)) for kept in finished.kept]


def by_urljoin(page: str, base_href: str | None, src: str) -> str:
    """The reference: the standard library's urljoin, against the base resolved against the page."""
    base = urljoin(page, base_href.strip()) if base_href and base_href.strip() else page
    return urljoin(base, src.strip().replace("\t", "").replace("\n", "").replace("\r", "")).split("#", 1)[0]


@pytest.mark.parametrize("page, base_href, src, expected", RESOLVED)
def test_urls_resolve_as_urljoin_does(page, base_href, src, expected):
    assert resolved([(page, base_href, src)]) == [(expected, None)]
    assert by_urljoin(page, base_href, src) == expected


PAGES = ["https://a.example/dir/page.html", "https://a.example", "https://a.example/", "http://a.example/d/",
         "https://a.example/a/./b/page", "https://a.example/a//b/page", "https://a.example/x;p=1/y?q#f",
         "https://user@a.example:8443/dir/sub/index.php?id=3", "HTTPS://A.example/Dir/", "https://a.example/..",
         "https://a.example/dir/?", "https://a.example/dir/page.html#top", "file:///home/page.html"]
PIECES = ["a", "b.jpg", ".", "..", "", "x;y", "%E5%9B%BE", "größe", "?q=1", "?", "#f", "c:d", "HTTP:", "//",
          "https:", "http://h.example", "//cdn.example", "/", "...", ".x", "x.", "a b", "?q?r", "a@b"]


def test_resolution_matches_urljoin_on_thousands_of_generated_links():
    draw = random.Random(0)
    links = []
    for _ in range(20_000):
        page = draw.choice(PAGES)
        base_href = draw.choice([None, None, "/static/", "https://cdn.example/assets", "../up/", "sub/"])
        src = "".join(draw.choice(PIECES) + draw.choice(["/", "", "/"]) for _ in range(draw.randint(1, 4)))
        links.append((page, base_href, src))
    checked = 0
    for (page, base_href, src), (url, reason) in zip(links, resolved(links)):
        if reason is None:
            assert url == by_urljoin(page, base_href, src), (page, base_href, src)
            checked += 1
    assert checked > 10_000


@pytest.mark.parametrize("page, src, reason", [
    (PAGE, "data:image/gif;base64,R0lGODlhAQABAAAAACw=", "data_uri"),
    (PAGE, " DATA:image/png;base64,AAAA", "data_uri"),
    (PAGE, "javascript:void(0)", "unsupported_scheme"),
    (PAGE, "ftp://files.example/x.jpg", "unsupported_scheme"),
    (PAGE, "file:///etc/passwd", "unsupported_scheme"),
    ("file:///home/page.html", "x.jpg", "relative_unresolvable"),
    ("metadata://gnu.org/software/wget/warc/MANIFEST.txt", "/x.jpg", "relative_unresolvable"),
    ("", "x.jpg", "relative_unresolvable"),
    (PAGE, "http:x.jpg", "relative_unresolvable"),  # another scheme, no host: urljoin leaves it relative
    (PAGE, "https://a.example/" + "x" * 3000 + ".jpg", "url_too_long"),
])
def test_unusable_links_get_their_reason(page, src, reason):
    assert resolved([(page, None, src)]) == [(None, reason)]


def captions(alts: list[str | None], limits: LinkLimits = LinkLimits()) -> list[tuple[str | None, str | None]]:
    finished = finish_links(["x.jpg"] * len(alts), alts, np.zeros(len(alts), np.int64), [PAGE], limits)
    return per_link(finished, finished.caption)


def test_captions_are_whitespace_normalised_and_bounded():
    assert captions(["  a\n\tcat   on\u00a0a mat \u3000", None, " \n ", "x" * 21],
                    LinkLimits(max_caption_chars=20)) == [
        ("a cat on a mat", None), (None, "empty_alt"), (None, "empty_alt"), (None, "caption_too_long")]


def test_the_forms_pages_use_resolve_without_urljoin(finishing, monkeypatch):
    calls, resolve_one = [], link_module.resolve_one
    monkeypatch.setattr(link_module, "resolve_one", lambda base, src, limits: calls.append((base, src))
                        or resolve_one(base, src, limits))
    simple = [(PAGE, None, "//host.example/x.jpg"), (PAGE, None, "/x.jpg?size=2"), (PAGE, None, "../x.jpg#part"),
              (PAGE, None, "x/y.jpg"), (PAGE, None, "https://other.example/y.png"),
              (PAGE, "https://cdn.example/a/b/", "../../x.jpg"), (PAGE, None, "bilder/größe.jpg")]
    assert [url for url, _ in resolved(simple)] == [by_urljoin(*link) for link in simple]
    assert calls == ([] if finishing == "compiled" else [(page_base(page, base), src) for page, base, src in simple])
