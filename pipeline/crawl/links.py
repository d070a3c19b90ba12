"""An image link as found on a page, and what makes it a pool row: a resolvable http(s) url and alt text.

Urls resolve as browsers do (urljoin against the page's <base href>, itself resolved against the page url);
what cannot become a fetchable url, or a caption, gets the reason the manifest counts it under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin

MAX_URL_CHARS = 2048  # what browsers and img2dataset-era pools keep; longer ones are mostly tracking blobs
MAX_CAPTION_CHARS = 1000
FETCHABLE_SCHEMES = ("http", "https")
_WHITESPACE = re.compile(r"\s+")
_URL_NOISE = re.compile(r"[\t\n\r]")  # the URL standard drops these anywhere in a url
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


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


# The reference forms most image srcs take, and bases free of what urljoin would rewrite (dot segments, empty
# segments, ;params, an empty ?): for those, urljoin's result is a concatenation, made here without it.
_SEGMENT = r"(?!\.\.?(?:[/?]|$))[^/?#;\\\s]+"
_FIRST_SEGMENT = r"(?!\.\.?(?:[/?]|$))[^/?#;:\\\s]+"  # no ':' there, or it would be a scheme
_PATH = rf"(?:/{_SEGMENT})*/?"
_QUERY = r"(?:\?[^#\s]+)?"
_HOST = r"[^/?#;\\\s]+"
_SIMPLE_BASE = re.compile(rf"(https?)://({_HOST})({_PATH})(?:[?#].*)?", re.DOTALL)
_ABSOLUTE = re.compile(rf"https?://{_HOST}{_PATH}{_QUERY}")
_PROTOCOL_RELATIVE = re.compile(rf"//{_HOST}{_PATH}{_QUERY}")
_ROOT_RELATIVE = re.compile(rf"/(?:{_SEGMENT}{_PATH})?{_QUERY}")
_PATH_RELATIVE = re.compile(rf"{_FIRST_SEGMENT}{_PATH}{_QUERY}")


class PageUrls:
    """Resolves a page's image srcs as urljoin does against the page's base; common simple forms without it
    (about 3x cheaper per link, checked against urljoin in tests/crawl/test_links.py)."""

    def __init__(self, page_url: str, base_href: str | None = None, limits: LinkLimits = LinkLimits()):
        self.base, self.limits = page_base(page_url, base_href), limits
        simple = _SIMPLE_BASE.fullmatch(self.base)
        self._scheme = simple.group(1) if simple else None
        self._origin = f"{simple.group(1)}://{simple.group(2)}" if simple else None
        path = simple.group(3) if simple else ""
        self._directory = path[:path.rfind("/") + 1] or "/"

    def _joined(self, src: str) -> str:
        if self._origin is not None:
            if src.startswith(("http://", "https://")):
                if _ABSOLUTE.fullmatch(src):
                    return src
            elif src.startswith("//"):
                if _PROTOCOL_RELATIVE.fullmatch(src):
                    return f"{self._scheme}:{src}"
            elif src.startswith("/"):
                if _ROOT_RELATIVE.fullmatch(src):
                    return self._origin + src
            elif _PATH_RELATIVE.fullmatch(src):
                return self._origin + self._directory + src
        return urljoin(self.base, src).split("#", 1)[0]

    def resolve(self, src: str) -> tuple[str | None, str | None]:
        """(absolute url without fragment, None), or (None, reason) for a src that cannot be fetched."""
        src = _URL_NOISE.sub("", src.strip())
        scheme = _SCHEME.match(src)
        if scheme:
            name = scheme.group(1).lower()
            if name == "data":
                return None, "data_uri"
            if name not in FETCHABLE_SCHEMES:
                return None, "unsupported_scheme"
        url = self._joined(src)
        scheme = _SCHEME.match(url)
        if not scheme or scheme.group(1).lower() not in FETCHABLE_SCHEMES or not _has_host(url, scheme.end()):
            return None, "relative_unresolvable"
        if len(url) > self.limits.max_url_chars:
            return None, "url_too_long"
        return url, None


def _has_host(url: str, after_scheme: int) -> bool:
    """Whether `scheme://` is followed by a host, as urlsplit would find a netloc."""
    return url.startswith("//", after_scheme) and len(url) > after_scheme + 2 and url[after_scheme + 2] not in "/?#"


def clean_caption(text: str | None, limits: LinkLimits = LinkLimits()) -> tuple[str | None, str | None]:
    """(the text with whitespace runs made one space, None), or (None, reason)."""
    caption = _WHITESPACE.sub(" ", text or "").strip()
    if not caption:
        return None, "empty_alt"
    if len(caption) > limits.max_caption_chars:
        return None, "caption_too_long"
    return caption, None
