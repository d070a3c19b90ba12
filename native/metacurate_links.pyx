# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""A batch of image links finished in C: each alt's whitespace runs made one space, each src resolved against its
page's base as urljoin would, without urljoin for the forms most srcs take. What decides the result is stated in
pipeline.crawl.links, which this serves; the forms:

- a simple base: http(s)://host, then a path of plain segments (no "." or ".." or empty ones, no ;params), then
  anything after ? or #;
- srcs (their #fragment dropped) that are absolute (http(s)://host + plain path), protocol-relative (//host +
  plain path), root-relative (a plain path) or relative (at most MAX_UPS leading ../, then a plain path whose
  first segment has no colon), each with an optional ?query without whitespace.

A plain segment has none of / ? # ; \\ or whitespace (so a src with whitespace anywhere, even around it, is not
simple). Against a simple base those resolve by concatenation; every other link goes to the `resolve` given
(urljoin), but for data: URIs, which it would only reject. tests/crawl/test_links.py checks the whole against urljoin.
A top-level module for the same reason as metacurate_walk; pipeline.crawl.links resolves every link with urljoin
where it is missing.
"""

cimport cython
from cpython.unicode cimport Py_UNICODE_ISSPACE, PyUnicode_DATA, PyUnicode_KIND, PyUnicode_READ

import numpy as np

cdef enum:
    MAX_UPS = 3  # leading ../ joined here; more go to urljoin


cdef struct Chars:  # a str's code points, read without a Python call each
    int kind
    void *data


cdef inline Chars chars(str text) noexcept:
    cdef Chars view
    view.kind, view.data = PyUnicode_KIND(text), PyUnicode_DATA(text)
    return view


cdef inline Py_UCS4 char_at(Chars text, Py_ssize_t at) noexcept:
    return PyUnicode_READ(text.kind, text.data, at)


cdef inline bint plain(Py_UCS4 ch) noexcept:
    return not (ch == u'/' or ch == u'?' or ch == u'#' or ch == u';' or ch == u'\\' or Py_UNICODE_ISSPACE(ch))


cdef inline bint dot_segment(Chars text, Py_ssize_t start, Py_ssize_t stop) noexcept:
    """Whether text[start:stop] is "." or "..", segments urljoin removes."""
    return char_at(text, start) == u'.' and (stop - start == 1
                                             or (stop - start == 2 and char_at(text, start + 1) == u'.'))


cdef Py_ssize_t path_end(Chars text, Py_ssize_t at, Py_ssize_t end) except -2:
    """Past a path of plain segments starting at `at` ("/a/b", "/a/", "/" or nothing); -1 where a segment is
    "." or ".." or two slashes meet, which urljoin would rewrite."""
    cdef Py_ssize_t start
    while at < end and char_at(text, at) == u'/':
        start = at + 1
        at = start
        while at < end and plain(char_at(text, at)):
            at += 1
        if at == start:
            return -1 if at < end and char_at(text, at) == u'/' else at
        if dot_segment(text, start, at):
            return -1
    return at


cdef bint query_ends(Chars text, Py_ssize_t at, Py_ssize_t end) except -1:
    """Whether what is left from `at` is nothing, or a ? with text after it and no whitespace."""
    if at == end:
        return True
    if at < 0 or char_at(text, at) != u'?' or at + 1 == end:
        return False
    for at in range(at + 1, end):
        if Py_UNICODE_ISSPACE(char_at(text, at)):
            return False
    return True


cdef Py_ssize_t host_end(Chars text, Py_ssize_t at, Py_ssize_t end) except -2:
    """Past a host (plain characters) starting at `at`; -1 for none."""
    cdef Py_ssize_t start = at
    while at < end and plain(char_at(text, at)):
        at += 1
    return at if at > start else -1


cdef Py_ssize_t after_scheme(str text) except -2:
    """Past "http://" or "https://" at the start; -1 for other starts."""
    if text.startswith("http://"):
        return 7
    if text.startswith("https://"):
        return 8
    return -1


@cython.no_gc  # only text inside: no cycles, and a batch makes one per page
cdef class Base:
    """A simple base, cut into what srcs are joined with: its scheme, its origin, and its directory after
    0..MAX_UPS leading ../ (made by simple_base)."""

    cdef str scheme, origin
    cdef list directories


cdef object simple_base(str base):
    """The base's parts, or None where it is not simple."""
    cdef Py_ssize_t end = len(base), host_start = after_scheme(base), path_start, path_stop
    if host_start < 0:
        return None
    cdef Chars text = chars(base)
    path_start = host_end(text, host_start, end)
    if path_start < 0:
        return None
    path_stop = path_end(text, path_start, end)
    if path_stop < 0 or (path_stop < end and char_at(text, path_stop) != u'?' and char_at(text, path_stop) != u'#'):
        return None
    cdef Base parts = Base.__new__(Base)  # no __init__: one is made per page of the batch
    parts.scheme, parts.origin, parts.directories = base[:host_start - 3], base[:path_start], []
    cdef str directory = base[path_start:path_stop]
    directory = directory[:directory.rfind("/") + 1]
    for _ in range(MAX_UPS + 1):
        parts.directories.append(directory or "/")
        if directory.endswith("/"):
            directory = directory[:directory.rfind("/", 0, len(directory) - 1) + 1]
    return parts


cdef object joined(str src, Base base):
    """urljoin(base, src) without its fragment for a src of a simple form, else None."""
    cdef Py_ssize_t end = src.find("#"), at, start, ups = 0
    if end < 0:
        end = len(src)
    elif end < len(src):
        src = src[:end]
    cdef Chars text = chars(src)
    if src.startswith("http"):
        at = after_scheme(src)
        at = host_end(text, at, end) if at >= 0 else -1
        if at >= 0 and query_ends(text, path_end(text, at, end), end):
            return src
        return None
    if src.startswith("//"):
        at = host_end(text, 2, end)
        if at >= 0 and query_ends(text, path_end(text, at, end), end):
            return base.scheme + ":" + src
        return None
    if src.startswith("/"):
        return base.origin + src if query_ends(text, path_end(text, 0, end), end) else None
    at = 0
    while src.startswith("../", at):
        at += 3
        ups += 1
    if ups > MAX_UPS:
        return None
    start = at
    while at < end and plain(char_at(text, at)) and char_at(text, at) != u':':
        at += 1
    if at == start or dot_segment(text, start, at):
        return None
    if query_ends(text, path_end(text, at, end), end):
        return base.origin + base.directories[ups] + src[start:]
    return None


cdef bint tidy(str alt) except -1:
    """Whether the alt's whitespace is already single spaces between words."""
    cdef Py_ssize_t at, end = len(alt)
    cdef Py_UCS4 ch
    cdef bint after_space = True  # a space first is untidy too
    cdef Chars text = chars(alt)
    for at in range(end):
        ch = char_at(text, at)
        if ch == u' ':
            if after_space:
                return False
            after_space = True
        elif Py_UNICODE_ISSPACE(ch):
            return False
        else:
            after_space = False
    return not (after_space and end > 0)


def finish(list srcs, list alts, const long long[:] page_of_link, list page_bases, Py_ssize_t max_url_chars,
           Py_ssize_t max_caption_chars, resolve):
    """(kept, urls, captions, reasons): per link whether it is a row (a numpy bool array), the rows' urls and
    captions, the other links' reasons, each list in the links' order; resolve(base, src) -> (url, reason) takes
    the links of no simple form."""
    cdef Py_ssize_t count = len(srcs), index
    kept_array = np.zeros(count, np.bool_)
    cdef unsigned char[::1] kept = kept_array.view(np.uint8)
    cdef list urls = [], captions = [], reasons = []
    cdef list bases = [simple_base(base) for base in page_bases]
    cdef str caption
    cdef object alt, url, reason, base
    for index in range(count):
        alt = alts[index]
        caption = None if alt is None else (alt if tidy(alt) else " ".join(alt.split()))
        if not caption:
            reasons.append("empty_alt")
            continue
        if len(caption) > max_caption_chars:
            reasons.append("caption_too_long")
            continue
        base = bases[page_of_link[index]]
        url = None if base is None else joined(srcs[index], base)  # whitespace anywhere makes a src not simple
        if url is None and srcs[index].startswith("data:"):  # what resolve says of it, without the call: the
            url, reason = None, "data_uri"  # placeholders of lazily loaded images are common on real pages
        elif url is None:
            url, reason = resolve(page_bases[page_of_link[index]], srcs[index])
        else:
            reason = "url_too_long" if len(url) > max_url_chars else None
        if reason is None:
            kept[index] = True
            urls.append(url)
            captions.append(caption)
        else:
            reasons.append(reason)
    return kept_array, urls, captions, reasons
