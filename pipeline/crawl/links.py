"""An image link as found on a page, and what makes it a pool row: a resolvable http(s) url and alt text.

Urls resolve as browsers do (urljoin against the page's <base href>, itself resolved against the page url);
what cannot become a fetchable url, or a caption, gets the reason the manifest counts it under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

MAX_URL_CHARS = 2048  # what browsers and img2dataset-era pools keep; longer ones are mostly tracking blobs
MAX_CAPTION_CHARS = 1000
FETCHABLE_SCHEMES = ("http", "https")
_WHITESPACE = re.compile(r"\s+")
_URL_NOISE = re.compile(r"[\t\n\r]")  # the URL standard drops these anywhere in a url


@dataclass(frozen=True)
class ImageLink:
    """An <img> of a page: its src as written and its alt (None: no alt attribute) and title."""

    src: str
    alt: str | None
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


def resolve_url(src: str, base: str, limits: LinkLimits = LinkLimits()) -> tuple[str | None, str | None]:
    """(absolute url without fragment, None), or (None, reason) for a src that cannot be fetched."""
    src = _URL_NOISE.sub("", src.strip())
    if src.lower().startswith("data:"):
        return None, "data_uri"
    scheme = urlsplit(src).scheme.lower()
    if scheme and scheme not in FETCHABLE_SCHEMES:
        return None, "unsupported_scheme"
    resolved = urlsplit(urljoin(base, src))
    if resolved.scheme.lower() not in FETCHABLE_SCHEMES or not resolved.netloc:
        return None, "relative_unresolvable"
    url = urlunsplit(resolved._replace(fragment=""))
    if len(url) > limits.max_url_chars:
        return None, "url_too_long"
    return url, None


def clean_caption(text: str | None, limits: LinkLimits = LinkLimits()) -> tuple[str | None, str | None]:
    """(the text with whitespace runs made one space, None), or (None, reason)."""
    caption = _WHITESPACE.sub(" ", text or "").strip()
    if not caption:
        return None, "empty_alt"
    if len(caption) > limits.max_caption_chars:
        return None, "caption_too_long"
    return caption, None
