"""Image links as found on pages, and what makes them pool rows: a resolvable http(s) url and alt text.

Links are finished a batch at a time: captions have their whitespace runs made one space; urls resolve as
browsers do (urljoin against the page's <base href>, itself resolved against the page url). The forms most srcs
take (absolute, protocol-relative, root-relative, relative with leading ../) against a plain base are a
concatenation, done in C (native/metacurate_links.pyx); the rest, and all where that module is not installed, go
through urljoin one by one. What cannot become a fetchable url, or a caption, gets the reason the manifest counts
it under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from urllib.parse import urljoin

import numpy as np
import pyarrow as pa

try:
    import metacurate_links
except ImportError:  # not built here (an executor with only the shipped zip): every link goes through urljoin
    metacurate_links = None

MAX_URL_CHARS = 2048  # what browsers and img2dataset-era pools keep; longer ones are mostly tracking blobs
MAX_CAPTION_CHARS = 1000
FETCHABLE_SCHEMES = ("http", "https")
_URL_NOISE = re.compile(r"[\t\n\r]")  # the URL standard drops these anywhere in a url
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class LinkLimits:
    max_url_chars: int = MAX_URL_CHARS
    max_caption_chars: int = MAX_CAPTION_CHARS


def page_base(page_url: str, base_href: str | None) -> str:
    """What relative links resolve against: the page's <base href> (itself relative to the page), else the page."""
    if base_href and base_href.strip():
        return urljoin(page_url, _URL_NOISE.sub("", base_href.strip()))
    return page_url


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
    """Which links of a batch are rows (`kept`, a bool per link), the rows' urls and captions, and the other
    links' reasons, each in the links' order."""

    kept: np.ndarray
    url: pa.Array
    caption: pa.Array
    reason: pa.Array


def finish_links(srcs: list[str], alts: list[str | None], page_of_link: np.ndarray, page_bases: list[str],
                 limits: LinkLimits = LinkLimits()) -> FinishedLinks:
    """Captions and urls for a batch of links; `page_of_link` (int64) indexes `page_bases` (see `page_base`)."""
    finish = metacurate_links.finish if metacurate_links is not None else _finish_by_urljoin
    resolve = partial(resolve_one, limits=limits)
    kept, urls, captions, reasons = finish(srcs, alts, np.ascontiguousarray(page_of_link, np.int64), page_bases,
                                           limits.max_url_chars, limits.max_caption_chars, resolve)
    return FinishedLinks(kept, pa.array(urls, pa.string()), pa.array(captions, pa.string()),
                         pa.array(reasons, pa.string()))


def _finish_by_urljoin(srcs, alts, page_of_link, page_bases, max_url_chars, max_caption_chars, resolve):
    """What metacurate_links.finish gives, with every src resolved by `resolve` (urljoin)."""
    kept, urls, captions, reasons = np.zeros(len(srcs), np.bool_), [], [], []
    for index, (src, alt, page) in enumerate(zip(srcs, alts, page_of_link.tolist())):
        caption = " ".join(alt.split()) if alt is not None else ""
        if not caption:
            url, reason = None, "empty_alt"
        elif len(caption) > max_caption_chars:
            url, reason = None, "caption_too_long"
        else:
            url, reason = resolve(page_bases[page], src)
        if reason is None:
            kept[index] = True
            urls.append(url)
            captions.append(caption)
        else:
            reasons.append(reason)
    return kept, urls, captions, reasons
