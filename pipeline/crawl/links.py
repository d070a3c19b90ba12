"""Image links as found on pages, and what makes them pool rows: a resolvable http(s) url and alt text.

Links are finished a batch at a time, in Arrow: captions have their whitespace runs made one space; urls resolve
as browsers do (urljoin against the page's <base href>, itself resolved against the page url). The forms most
srcs take (absolute, protocol-relative, root-relative, relative with leading ../) against a plain base are a
concatenation, built here for the whole batch; the rest go through urljoin one by one. What cannot become a
fetchable url, or a caption, gets the reason the manifest counts it under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

MAX_URL_CHARS = 2048  # what browsers and img2dataset-era pools keep; longer ones are mostly tracking blobs
MAX_CAPTION_CHARS = 1000
FETCHABLE_SCHEMES = ("http", "https")
# What str.isspace() (and so str.split() and re's \s) counts as whitespace; written out so that Arrow's RE2
# patterns use the same set (tests/crawl/test_links.py checks it against every code point).
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
              "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_URL_NOISE = re.compile(r"[\t\n\r]")  # the URL standard drops these anywhere in a url
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_NULL = pa.scalar(None, pa.string())


class ImageLink(msgspec.Struct, gc=False):
    """An <img> of a page: its src as written and its alt (None: no alt attribute) and title. A struct so that
    WAT records decode straight into it ("url" is what WAT calls the src); only text inside, so untracked by the
    garbage collector, which pages of hundreds of links would otherwise keep waking."""

    src: str = msgspec.field(default="", name="url")
    alt: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class LinkLimits:
    max_url_chars: int = MAX_URL_CHARS
    max_caption_chars: int = MAX_CAPTION_CHARS


def page_base(page_url: str, base_href: str | None) -> str:
    """What relative links resolve against: the page's <base href> (itself relative to the page), else the page."""
    if base_href and base_href.strip():
        return urljoin(page_url, _URL_NOISE.sub("", base_href.strip()))
    return page_url


# The simple forms, as patterns RE2 (Arrow) runs: a segment is a run of plain characters other than "." and ".."
# (which urljoin would remove), the first segment of a relative path has no ":" (it would be a scheme), and a
# simple base has no dot segments, empty segments or ;params for urljoin to rewrite.
def _class(excluded: str) -> str:
    return "".join(rf"\x{ord(char):02x}" if ord(char) < 0x80 else char for char in excluded)


def _segment(excluded: str) -> str:
    plain = _class(excluded)
    return rf"(?:[^.{plain}][^{plain}]*|\.[^.{plain}][^{plain}]*|\.\.[^{plain}]+)"


_EXCLUDED = "/?#;\\" + WHITESPACE
_PATH = rf"(?:/{_segment(_EXCLUDED)})*/?"
_QUERY = rf"(?:\?[^#{_class(WHITESPACE)}]+)?"
_HOST = rf"[^{_class(_EXCLUDED)}]+"
_SIMPLE_BASE = rf"(?s)^(?P<scheme>https?)://(?P<host>{_HOST})(?P<path>{_PATH})(?:[?#].*)?$"
_ABSOLUTE = rf"^https?://{_HOST}{_PATH}{_QUERY}$"
_PROTOCOL_RELATIVE = rf"^//{_HOST}{_PATH}{_QUERY}$"
_ROOT_RELATIVE = rf"^/(?:{_segment(_EXCLUDED)}{_PATH})?{_QUERY}$"
_UPS_THEN_RELATIVE = rf"^(?P<ups>(?:\.\./)*)(?P<rest>{_segment(_EXCLUDED + ':')}{_PATH}{_QUERY})$"
MAX_UPS = 3  # leading ../ resolved in the batch; more go through urljoin
_UNTIDY = f"[{_class(WHITESPACE.replace(' ', ''))}]|  |^ | $"  # alts whose whitespace needs tidying


def captions(alts: pa.Array, limits: LinkLimits) -> tuple[pa.Array, pa.Array]:
    """(each alt with its whitespace runs made one space, the reason where it is no caption: `empty_alt`,
    `caption_too_long`). Most alts have nothing to change; only the others go through the regex."""
    untidy = pc.fill_null(pc.match_substring_regex(alts, _UNTIDY), False)
    cleaned = _replaced(alts, untidy, lambda some: pc.utf8_trim(
        pc.replace_substring_regex(some, f"[{_class(WHITESPACE)}]+", " "), characters=" "))
    length = pc.utf8_length(cleaned)
    reason = pc.case_when(pc.make_struct(pc.fill_null(pc.equal(length, 0), True),
                                         pc.greater(length, limits.max_caption_chars)),
                          pa.scalar("empty_alt"), pa.scalar("caption_too_long"))
    return cleaned, reason


def _replaced(values: pa.Array, where: pa.Array, change) -> pa.Array:
    """values with change(the values where `where` holds) put in their places."""
    if not pc.any(where).as_py():
        return values
    return pc.replace_with_mask(values, where, change(values.filter(where)))


def _base_parts(bases: pa.Array) -> dict[str, pa.Array]:
    """Per base: scheme, origin and (up0, up1, ...) the directory after 0..MAX_UPS leading ../ (all null: not a
    simple base)."""
    parts = pc.extract_regex(bases, _SIMPLE_BASE)
    scheme, host, path = (pc.struct_field(parts, name) for name in ("scheme", "host", "path"))
    directories = [pc.replace_substring_regex(path, "[^/]*$", "")]
    for _ in range(MAX_UPS):
        directories.append(pc.replace_substring_regex(directories[-1], "[^/]*/$", ""))
    return {"scheme": scheme, "origin": pc.binary_join_element_wise(scheme, "://", host, ""),
            **{f"up{ups}": pc.if_else(pc.equal(directory, ""), "/", directory)
               for ups, directory in enumerate(directories)}}


def _joined(srcs: pa.Array, parts: dict[str, pa.Array]) -> pa.Array:
    """urljoin's result (fragment dropped) where the src has a simple form and its base is simple; null elsewhere.
    The src's first characters tell which form it could be; each form's pattern runs on those srcs only."""
    src = _replaced(srcs, pc.fill_null(pc.match_substring(srcs, "#"), False),
                    lambda some: pc.replace_substring_regex(some, "#.*", ""))  # no part in resolving the rest
    absolute = pc.starts_with(src, "http")
    protocol_relative = pc.starts_with(src, "//")
    root_relative = pc.and_(pc.starts_with(src, "/"), pc.invert(protocol_relative))
    relative = pc.invert(pc.or_(absolute, pc.starts_with(src, "/")))
    forms = (
        (absolute, lambda some, _: pc.if_else(pc.match_substring_regex(some, _ABSOLUTE), some, _NULL)),
        (protocol_relative, lambda some, at: pc.if_else(pc.match_substring_regex(some, _PROTOCOL_RELATIVE),
                                                        pc.binary_join_element_wise(at["scheme"], some, ":"), _NULL)),
        (root_relative, lambda some, at: pc.if_else(pc.match_substring_regex(some, _ROOT_RELATIVE),
                                                    pc.binary_join_element_wise(at["origin"], some, ""), _NULL)),
        (relative, _relative_joined),
    )
    url = pa.nulls(len(srcs), pa.string())
    simple_base = pc.is_valid(parts["origin"])
    for form, join in forms:
        where = pc.fill_null(pc.and_(form, simple_base), False)
        url = _replaced(url, where, lambda some, where=where, join=join: join(
            src.filter(where), {name: value.filter(where) for name, value in parts.items()}))
    return url


def _relative_joined(some: pa.Array, at: dict[str, pa.Array]) -> pa.Array:
    relative = pc.extract_regex(some, _UPS_THEN_RELATIVE)
    ups = pc.divide(pc.utf8_length(pc.struct_field(relative, "ups")), 3)
    directory = pc.choose(pc.min_element_wise(ups, MAX_UPS), *(at[f"up{count}"] for count in range(MAX_UPS + 1)))
    return pc.if_else(pc.less_equal(ups, MAX_UPS),
                      pc.binary_join_element_wise(at["origin"], directory, pc.struct_field(relative, "rest"), ""),
                      _NULL)


def resolve_one(base: str, src: str, limits: LinkLimits) -> tuple[str | None, str | None]:
    """(absolute url without fragment, None), or (None, reason) for a src that cannot be fetched: the urljoin
    path, for srcs of no simple form."""
    src = _URL_NOISE.sub("", src.strip())
    scheme = _SCHEME.match(src)
    if scheme:
        name = scheme.group(1).lower()
        if name == "data":
            return None, "data_uri"
        if name not in FETCHABLE_SCHEMES:
            return None, "unsupported_scheme"
    url = urljoin(base, src).split("#", 1)[0]
    scheme = _SCHEME.match(url)
    if not scheme or scheme.group(1).lower() not in FETCHABLE_SCHEMES or not _has_host(url, scheme.end()):
        return None, "relative_unresolvable"
    if len(url) > limits.max_url_chars:
        return None, "url_too_long"
    return url, None


def _has_host(url: str, after_scheme: int) -> bool:
    """Whether `scheme://` is followed by a host, as urlsplit would find a netloc."""
    return url.startswith("//", after_scheme) and len(url) > after_scheme + 2 and url[after_scheme + 2] not in "/?#"


@dataclass(frozen=True)
class FinishedLinks:
    """Per link: its url and caption when it is a row (null otherwise), or the reason it is not."""

    url: pa.Array
    caption: pa.Array
    reason: pa.Array


def finish_links(srcs: pa.Array, alts: pa.Array, page_of_link: pa.Array, page_bases: pa.Array,
                 limits: LinkLimits = LinkLimits()) -> FinishedLinks:
    """Captions and urls for a batch of links; `page_of_link` indexes `page_bases` (see `page_base`)."""
    caption, caption_reason = captions(alts, limits)
    parts = {name: values.take(page_of_link) for name, values in _base_parts(page_bases).items()}
    src = pc.utf8_trim(srcs, characters=WHITESPACE)
    src = _replaced(src, pc.fill_null(pc.match_substring_regex(src, "[\t\n\r]"), False),
                    lambda some: pc.replace_substring_regex(some, "[\t\n\r]", ""))
    is_caption = pc.is_null(caption_reason)
    url = pc.if_else(is_caption, _joined(src, parts), _NULL)
    url_reason = pc.if_else(pc.greater(pc.utf8_length(url), limits.max_url_chars), "url_too_long", _NULL)
    unresolved = pc.and_(is_caption, pc.is_null(url))
    if pc.any(unresolved).as_py():
        bases = page_bases.take(page_of_link.filter(unresolved)).to_pylist()
        slow = [resolve_one(base, raw, limits) for base, raw in zip(bases, srcs.filter(unresolved).to_pylist())]
        url = pc.replace_with_mask(url, unresolved, pa.array([url for url, _ in slow], pa.string()))
        url_reason = pc.replace_with_mask(url_reason, unresolved, pa.array([reason for _, reason in slow], pa.string()))
    reason = pc.coalesce(caption_reason, url_reason)
    kept = pc.is_null(reason)
    return FinishedLinks(pc.if_else(kept, url, _NULL), pc.if_else(kept, caption, _NULL), reason)
