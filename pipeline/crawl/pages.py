"""A page's image links, from its HTML (a WARC response) or from Common Crawl's WAT metadata of it.

Both give the same thing, a `Page`: the <base href> if any and each <img>'s src, alt and title, so the rest of
extraction does not care which file type it read. Problems with a page are reasons, not exceptions.
"""

from __future__ import annotations

import codecs
from typing import NamedTuple

import msgspec
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree

try:
    import metacurate_wat
except ImportError:  # not built here (an executor with only the shipped zip): msgspec reads every record
    metacurate_wat = None

WAT_IMAGE_PATH = "IMG@/src"  # how Common Crawl's WAT names the src attribute of an <img> among a page's links


class Page(NamedTuple):
    """What a page offers the pool: per <img> its src as written, its alt and title (None: no such attribute);
    `url`: the page's url where the record itself names it (WAT's WARC-Header-Metadata; else the record's WARC
    header says it); `note`: what was odd but recoverable (a wrongly declared charset). A named tuple: one is made
    per page read, and a dataclass's init costs a microsecond."""

    base_href: str | None
    srcs: list[str]
    alts: list[str | None]
    titles: list[str | None]
    note: str | None = None
    url: str | None = None


class PageError(ValueError):
    """A record that yields no page; `reason` is what the manifest counts it under."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _known_codec(name: str | None) -> str | None:
    try:
        return codecs.lookup(name).name if name else None
    except LookupError:
        return None


def decode_html(body: bytes, declared: str | None) -> tuple[str, str | None]:
    """The page as text and a note: the declared charset (HTTP header, else <meta>) is trusted while the bytes
    decode in it; otherwise (`charset_mismatch`) or when nothing is declared (`charset_detected`), the charset
    is detected from the bytes."""
    charset = _known_codec(declared) or _known_codec(detect_encoding(body, from_html_meta=True)
                                                     if b"charset" in body[:1024].lower() else None)
    if charset is not None:
        try:
            return body.decode(charset), None
        except UnicodeDecodeError:
            note = "charset_mismatch"
    else:
        note = "charset_detected"
    return bytes_to_str(body, detect_encoding(body), errors="replace"), note


def page_from_html(body: bytes, declared_charset: str | None) -> Page:
    """Every <img> of the HTML with its attributes (entities decoded by the parser)."""
    text, note = decode_html(body, declared_charset)
    tree = HTMLTree.parse(text)
    if tree.document is None:
        raise PageError("unparsable_html", "the HTML parser found no document")
    base = tree.document.query_selector("base[href]")
    srcs, alts, titles = [], [], []
    for img in tree.document.query_selector_all("img[src]"):  # one walk: resiliparse makes each node anew
        srcs.append(img.getattr("src") or "")
        alts.append(img.getattr("alt"))
        titles.append(img.getattr("title"))
    return Page(base.getattr("href") if base is not None else None, srcs, alts, titles, note)


class _WatLink(msgspec.Struct, gc=False):
    """One of the links WAT lists for a page; `path` says which tag and attribute it came from ("url" is what WAT
    calls the src). Only text inside, so untracked by the garbage collector, which pages of hundreds of links
    would otherwise keep waking."""

    path: str = ""
    src: str = msgspec.field(default="", name="url")
    alt: str | None = None
    title: str | None = None


# The one branch of a WAT record that holds a page's links, as types: decoding into them checks the whole record's
# JSON syntax but builds objects only for this branch, about half the work of decoding everything.
class _Head(msgspec.Struct):
    Base: str | None = None


class _HtmlMetadata(msgspec.Struct):
    Head: _Head | None = None
    Links: list[_WatLink] | None = None


class _ResponseMetadata(msgspec.Struct):
    html: _HtmlMetadata | None = msgspec.field(default=None, name="HTML-Metadata")


class _PayloadMetadata(msgspec.Struct):
    response: _ResponseMetadata | None = msgspec.field(default=None, name="HTTP-Response-Metadata")


class _WarcHeader(msgspec.Struct):
    target: str | None = msgspec.field(default=None, name="WARC-Target-URI")


class _Envelope(msgspec.Struct):
    header: _WarcHeader | None = msgspec.field(default=None, name="WARC-Header-Metadata")
    payload: _PayloadMetadata | None = msgspec.field(default=None, name="Payload-Metadata")


class _WatRecord(msgspec.Struct):
    Envelope: _Envelope | None = None


_WAT_RECORD = msgspec.json.Decoder(_WatRecord)


def may_describe_page(payload: bytes) -> bool:
    """False for WAT records about anything but an HTML response (requests, warcinfo, non-HTML responses), which
    carry no links. Those are most records of a WAT file, and a missing key tells them apart without parsing."""
    return b'"HTML-Metadata"' in payload


def page_from_wat(payload: bytes) -> Page | None:
    """The page a WAT metadata record describes; None for a record about no HTML page. The compiled scan reads
    the records it is sure of; msgspec the others (and all where the scan is not installed)."""
    if metacurate_wat is not None:
        found, base, target, srcs, alts, titles = metacurate_wat.image_links(payload, _IMAGE_PATH_BYTES)
        if found != metacurate_wat.UNDECIDED:
            return Page(base, srcs, alts, titles, url=target) if found == metacurate_wat.PAGE else None
    return _page_from_wat_by_msgspec(payload)


_IMAGE_PATH_BYTES = WAT_IMAGE_PATH.encode()


def _page_from_wat_by_msgspec(payload: bytes) -> Page | None:
    """page_from_wat's answer from msgspec: the typed reading of the links' branch, else the loose one."""
    try:
        try:
            record = _WAT_RECORD.decode(payload)
        except msgspec.ValidationError:  # valid JSON of unexpected shape in the links' branch: read it loosely
            return _page_from_odd_wat(msgspec.json.decode(payload))
    except (msgspec.DecodeError, UnicodeDecodeError) as error:  # the loose reading also checks what the typed
        raise PageError("invalid_json", f"WAT record is not JSON: {error}") from None  # one skips (UTF-8, numbers)
    html = record.Envelope and record.Envelope.payload and record.Envelope.payload.response and \
        record.Envelope.payload.response.html
    if html is None:
        return None
    images = [link for link in html.Links or () if link.path == WAT_IMAGE_PATH]
    header = record.Envelope.header
    return Page(html.Head.Base if html.Head else None, [link.src for link in images], [link.alt for link in images],
                [link.title for link in images], url=header.target if header else None)


def _dig(record, *keys: str):
    for key in keys:
        record = record.get(key) if isinstance(record, dict) else None
    return record


def _page_from_odd_wat(record) -> Page | None:
    """What the typed reading gives, from a record with odd types where the links are: those are skipped (a link
    that is not an object, an alt that is not text), numbers as urls are kept as text."""
    html = _dig(record, "Envelope", "Payload-Metadata", "HTTP-Response-Metadata", "HTML-Metadata")
    if not isinstance(html, dict):
        return None
    links = html.get("Links")
    base = _dig(html, "Head", "Base")
    images = [link for link in links if isinstance(link, dict) and link.get("path") == WAT_IMAGE_PATH] \
        if isinstance(links, list) else []
    return Page(_text(base), [str(link.get("url") or "") for link in images],
                [_text(link.get("alt")) for link in images], [_text(link.get("title")) for link in images],
                url=_text(_dig(record, "Envelope", "WARC-Header-Metadata", "WARC-Target-URI")))


def _text(value) -> str | None:
    return value if isinstance(value, str) else None
