# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""A WAT metadata record's image links in one pass over its JSON, in C: the record's syntax is checked as it is
read, and only the branch that holds the page's links (Envelope -> Payload-Metadata -> HTTP-Response-Metadata ->
HTML-Metadata -> Head.Base and Links) becomes Python objects, and of the links only the images; also the page's url
(Envelope -> WARC-Header-Metadata -> WARC-Target-URI), which spares a lookup in the record's WARC headers. A typed
msgspec decode builds a struct for every link, navigation included (about 60 on a page), which was most of a
page's cost.

The scan decides only what it is sure of: a record of the expected shape (PAGE) or one with no links' branch
(NO_PAGE). Anything else, JSON that does not parse or odd types where the links are, is UNDECIDED, and
pipeline.crawl.pages reads it the slow way, which gives the reasons. So the scan may be stricter than JSON, never
looser (tests/crawl/test_wat_scan.py checks both readings agree on mutated records).
A top-level module for the same reason as metacurate_walk; pipeline.crawl.pages reads records with msgspec alone
where it is missing.
"""

from libc.stdlib cimport free, malloc
cimport cython
from libc.stdint cimport uint64_t
from libc.string cimport memcmp, memcpy, strlen

cdef enum:
    UNDECIDED_ = -1
    NO_PAGE_ = 0
    PAGE_ = 1
    MAX_DEPTH = 512  # nesting the skipper follows; deeper records are left to the slow reading
PAGE, NO_PAGE, UNDECIDED = PAGE_, NO_PAGE_, UNDECIDED_
cdef tuple LINKS_BRANCH = (b"Envelope", b"Payload-Metadata", b"HTTP-Response-Metadata", b"HTML-Metadata")


class Undecided(Exception):
    """Raised inside the scan where it stops deciding."""


cdef unsigned char STRING_STOPS[256]  # the bytes that end a run of plain text in a string: quote, backslash, controls
for _byte in range(256):
    STRING_STOPS[_byte] = _byte < 0x20 or _byte == ord('"') or _byte == ord('\\')


cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil  # gcc's and clang's count of trailing zero bits


cdef inline int first_stop(const unsigned char *at) noexcept nogil:
    """Which of the 8 bytes at `at` is the first quote, backslash or control character (8: none), by the bit
    tricks that find a zero byte (x - 0x01.. & ~x & 0x80..): on the word itself for bytes under 0x20, on its XOR
    with the quote and the backslash repeated. The lowest flagged byte is exact (those above it may not be)."""
    cdef uint64_t word
    memcpy(&word, at, 8)  # little-endian: the first byte is the lowest
    cdef uint64_t quote = word ^ 0x2222222222222222ULL, backslash = word ^ 0x5C5C5C5C5C5C5C5CULL
    cdef uint64_t flags = (((word - 0x2020202020202020ULL) & ~word) | ((quote - 0x0101010101010101ULL) & ~quote)
                           | ((backslash - 0x0101010101010101ULL) & ~backslash)) & 0x8080808080808080ULL
    return 8 if flags == 0 else __builtin_ctzll(flags) >> 3


cdef struct Text:  # where a string value lies in the record, its escapes not yet written out
    Py_ssize_t start
    Py_ssize_t stop
    bint escaped
    bint null
    bint present


cdef struct Cursor:
    const unsigned char *data
    Py_ssize_t pos
    Py_ssize_t end


cdef inline void skip_space(Cursor *c) noexcept nogil:
    while c.pos < c.end and (c.data[c.pos] == c' ' or c.data[c.pos] == c'\n' or c.data[c.pos] == c'\r'
                             or c.data[c.pos] == c'\t'):
        c.pos += 1


cdef bint valid_utf8(const unsigned char *text, Py_ssize_t length) noexcept nogil:
    """Whether the bytes are UTF-8 as Python's strict codec takes it: shortest forms, no surrogates, at most
    U+10FFFF."""
    cdef Py_ssize_t at = 0, extra, i
    cdef unsigned char lead
    cdef int code, least
    cdef uint64_t word
    while at < length:
        if at + 8 <= length:
            memcpy(&word, text + at, 8)
            if word & 0x8080808080808080ULL == 0:  # eight ASCII bytes
                at += 8
                continue
        lead = text[at]
        if lead < 0x80:
            at += 1
            continue
        if 0xC2 <= lead <= 0xDF:
            extra, code, least = 1, lead & 0x1F, 0x80
        elif 0xE0 <= lead <= 0xEF:
            extra, code, least = 2, lead & 0x0F, 0x800
        elif 0xF0 <= lead <= 0xF4:
            extra, code, least = 3, lead & 0x07, 0x10000
        else:
            return False
        if at + extra >= length:
            return False
        for i in range(1, extra + 1):
            if text[at + i] & 0xC0 != 0x80:
                return False
            code = (code << 6) | (text[at + i] & 0x3F)
        if code < least or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return False
        at += extra + 1
    return True


cdef inline int hex_value(unsigned char ch) noexcept nogil:
    if c'0' <= ch <= c'9':
        return ch - c'0'
    if c'a' <= ch <= c'f':
        return ch - c'a' + 10
    if c'A' <= ch <= c'F':
        return ch - c'A' + 10
    return -1


cdef int utf16_unit(const unsigned char *at) noexcept nogil:
    """The code unit of the four hex digits at `at`, or -1."""
    cdef int unit = 0, digit, i
    for i in range(4):
        digit = hex_value(at[i])
        if digit < 0:
            return -1
        unit = unit * 16 + digit
    return unit


cdef int escape_length(Cursor *c, Py_ssize_t at, int *code) noexcept nogil:
    """Bytes of the escape starting with the backslash at `at` (a \\u surrogate pair is one escape of 12), its
    code point in `code`; -1 for an escape JSON does not allow or a surrogate without its other half."""
    cdef unsigned char kind
    cdef int low
    if at + 1 >= c.end:
        return -1
    kind = c.data[at + 1]
    if kind != c'u':
        if kind == c'"' or kind == c'\\' or kind == c'/':
            code[0] = kind
        elif kind == c'b':
            code[0] = 8
        elif kind == c'f':
            code[0] = 12
        elif kind == c'n':
            code[0] = 10
        elif kind == c'r':
            code[0] = 13
        elif kind == c't':
            code[0] = 9
        else:
            return -1
        return 2
    if at + 6 > c.end:
        return -1
    code[0] = utf16_unit(c.data + at + 2)
    if code[0] < 0 or 0xDC00 <= code[0] <= 0xDFFF:
        return -1
    if code[0] < 0xD800 or code[0] > 0xDBFF:
        return 6
    if at + 12 > c.end or c.data[at + 6] != c'\\' or c.data[at + 7] != c'u':
        return -1
    low = utf16_unit(c.data + at + 8)
    if low < 0xDC00 or low > 0xDFFF:
        return -1
    code[0] = 0x10000 + ((code[0] - 0xD800) << 10) + (low - 0xDC00)
    return 12


cdef inline int scan_string(Cursor *c, Py_ssize_t *start, bint *escaped) noexcept nogil:
    """At an opening quote: moves past the string, its text starting at `start` and ending before the closing
    quote; 0, or -1 for a string JSON does not allow (cut short, a control character, a bad escape)."""
    cdef int code, length, stop
    cdef unsigned char ch
    cdef const unsigned char *data = c.data
    cdef Py_ssize_t at = c.pos + 1, end = c.end
    start[0], escaped[0] = at, False
    while True:
        while at + 8 <= end:  # most of a record: plain text, 8 bytes a step
            stop = first_stop(data + at)
            at += stop
            if stop < 8:
                break
        else:
            while at < end and not STRING_STOPS[data[at]]:
                at += 1
        if at >= end:
            return -1
        ch = data[at]
        if ch == c'"':
            c.pos = at + 1
            return 0
        if ch != c'\\':
            return -1  # a control character
        length = escape_length(c, at, &code)
        if length < 0:
            return -1
        escaped[0] = True
        at += length


cdef inline Py_ssize_t skip_digits(Cursor *c) noexcept nogil:
    cdef Py_ssize_t start = c.pos
    while c.pos < c.end and c'0' <= c.data[c.pos] <= c'9':
        c.pos += 1
    return c.pos - start


cdef int skip_number(Cursor *c) noexcept nogil:
    """-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?"""
    if c.data[c.pos] == c'-':
        c.pos += 1
    if c.pos < c.end and c.data[c.pos] == c'0':
        c.pos += 1
    elif skip_digits(c) == 0:
        return -1
    if c.pos < c.end and c.data[c.pos] == c'.':
        c.pos += 1
        if skip_digits(c) == 0:
            return -1
    if c.pos < c.end and (c.data[c.pos] == c'e' or c.data[c.pos] == c'E'):
        c.pos += 1
        if c.pos < c.end and (c.data[c.pos] == c'+' or c.data[c.pos] == c'-'):
            c.pos += 1
        if skip_digits(c) == 0:
            return -1
    return 0


cdef inline bint takes(Cursor *c, const char *word, Py_ssize_t length) noexcept nogil:
    """Moves past `word` if it is next."""
    if c.pos + length <= c.end and memcmp(c.data + c.pos, word, length) == 0:
        c.pos += length
        return True
    return False


cdef inline int skip_scalar(Cursor *c) noexcept nogil:
    cdef Py_ssize_t start
    cdef bint escaped
    cdef unsigned char ch = c.data[c.pos]
    if ch == c'"':
        return scan_string(c, &start, &escaped)
    if ch == c'-' or c'0' <= ch <= c'9':
        return skip_number(c)
    if takes(c, b"true", 4) or takes(c, b"false", 5) or takes(c, b"null", 4):
        return 0
    return -1


cdef inline int scan_key(Cursor *c, Py_ssize_t *start) noexcept nogil:
    """At a member's key: moves past it and its colon; -1 unless it is a string without escapes (keys the scan
    looks for have none) followed by a colon."""
    cdef bint escaped
    skip_space(c)
    if c.pos >= c.end or c.data[c.pos] != c'"' or scan_string(c, start, &escaped) < 0 or escaped:
        return -1
    skip_space(c)
    if c.pos >= c.end or c.data[c.pos] != c':':
        return -1
    c.pos += 1
    return 0


cdef int skip_value(Cursor *c) noexcept nogil:
    """Moves past one JSON value, checking its syntax; -1 where it breaks."""
    cdef unsigned char open_[MAX_DEPTH]
    cdef int depth = 0
    cdef unsigned char ch
    cdef Py_ssize_t key
    while True:
        skip_space(c)
        if c.pos >= c.end:
            return -1
        ch = c.data[c.pos]
        if ch == c'{' or ch == c'[':
            if depth == MAX_DEPTH:
                return -1
            c.pos += 1
            skip_space(c)
            if c.pos < c.end and c.data[c.pos] == ch + 2:  # } and ] are two after { and [
                c.pos += 1
            else:
                open_[depth] = ch
                depth += 1
                if ch == c'{' and scan_key(c, &key) < 0:
                    return -1
                continue
        elif skip_scalar(c) < 0:
            return -1
        while True:  # after a value: a comma goes on to the next, a bracket closes its container
            if depth == 0:
                return 0
            skip_space(c)
            if c.pos >= c.end:
                return -1
            ch = c.data[c.pos]
            c.pos += 1
            if ch == c',':
                if open_[depth - 1] == c'{' and scan_key(c, &key) < 0:
                    return -1
                break
            if ch != open_[depth - 1] + 2:
                return -1
            depth -= 1


@cython.final  # its methods are called directly, not through a table
cdef class _Reader:
    """The scan over one record; raises Undecided where it stops deciding."""

    cdef Cursor c
    cdef bytes payload
    cdef bytes image_path
    cdef object base, target
    cdef list srcs, alts, titles

    def __cinit__(self, bytes payload, bytes image_path):
        self.payload, self.image_path = payload, image_path
        self.c.data = <const unsigned char *>payload
        self.c.pos, self.c.end = 0, len(payload)
        self.base, self.target, self.srcs, self.alts, self.titles = None, None, [], [], []

    cdef int skip(self) except -1:
        if skip_value(&self.c) < 0:
            raise Undecided

    cdef int opens_object(self) except -1:
        """At a value: True past the { of an object, False past a null; Undecided for anything else."""
        skip_space(&self.c)
        if takes(&self.c, b"null", 4):
            return False
        if self.c.pos >= self.c.end or self.c.data[self.c.pos] != c'{':
            raise Undecided
        self.c.pos += 1
        return True

    cdef Py_ssize_t next_key(self, bint first) except -2:
        """In an object: the start of the next member's key (moved past its colon), or -1 past the closing }."""
        cdef Py_ssize_t start
        skip_space(&self.c)
        if self.c.pos < self.c.end and self.c.data[self.c.pos] == c'}':
            self.c.pos += 1
            return -1
        if not first:
            if self.c.pos >= self.c.end or self.c.data[self.c.pos] != c',':
                raise Undecided
            self.c.pos += 1
        if scan_key(&self.c, &start) < 0:
            raise Undecided
        return start

    cdef inline bint key_is(self, Py_ssize_t start, const char *name) noexcept:
        """Whether the key that starts at `start` (the cursor just past it) is `name`."""
        cdef Py_ssize_t length = strlen(name)
        return self.c.pos > start + length and self.c.data[start + length] == c'"' and \
            memcmp(self.c.data + start, name, length) == 0

    cdef object text(self, bint nullable):
        """At a value: a string as str (None for null where `nullable`); Undecided for other types."""
        cdef Text member
        self.locate(&member, nullable)
        return self.decoded(&member)

    cdef str unescaped(self, Py_ssize_t start, Py_ssize_t stop):
        """The string's escapes written out as UTF-8 (never longer than the escaped text), then decoded."""
        cdef unsigned char *out = <unsigned char *>malloc(stop - start)
        cdef Py_ssize_t at = start, written = 0
        cdef int code, length
        if out == NULL:
            raise MemoryError
        try:
            while at < stop:
                if self.c.data[at] != c'\\':
                    out[written] = self.c.data[at]
                    written += 1
                    at += 1
                    continue
                length = escape_length(&self.c, at, &code)
                at += length
                if code < 0x80:
                    out[written] = code
                    written += 1
                elif code < 0x800:
                    out[written], out[written + 1] = 0xC0 | (code >> 6), 0x80 | (code & 0x3F)
                    written += 2
                elif code < 0x10000:
                    out[written], out[written + 1] = 0xE0 | (code >> 12), 0x80 | ((code >> 6) & 0x3F)
                    out[written + 2] = 0x80 | (code & 0x3F)
                    written += 3
                else:
                    out[written], out[written + 1] = 0xF0 | (code >> 18), 0x80 | ((code >> 12) & 0x3F)
                    out[written + 2], out[written + 3] = 0x80 | ((code >> 6) & 0x3F), 0x80 | (code & 0x3F)
                    written += 4
            return (<char *>out)[:written].decode("utf-8")
        finally:
            free(out)

    cdef int read(self) except -2:
        """PAGE or NO_PAGE for the whole record."""
        cdef int found = NO_PAGE_
        if self.opens_object():
            found = self.branch(0)
        else:
            raise Undecided  # a record that is null: the slow reading says what it is
        skip_space(&self.c)
        if self.c.pos != self.c.end:
            raise Undecided
        return found

    cdef int branch(self, int level) except -2:
        """Inside an object of the links' branch: its one member on the branch descended, the others skipped; in
        the Envelope, its WARC-Header-Metadata's WARC-Target-URI is kept too (the page's url)."""
        cdef Py_ssize_t key
        cdef bint first = True, seen = False, header_seen = False
        cdef int found = NO_PAGE_
        if level == len(LINKS_BRANCH):
            return self.html_metadata()
        while True:
            key = self.next_key(first)
            if key < 0:
                return found
            first = False
            if self.key_is(key, <const char *>LINKS_BRANCH[level]):
                if seen:
                    raise Undecided  # a repeated key: the slow reading knows which one wins
                seen = True
                if self.opens_object():
                    found = self.branch(level + 1)
            elif level == 1 and self.key_is(key, b"WARC-Header-Metadata"):
                if header_seen:
                    raise Undecided
                header_seen = True
                self.target = self.member_text(b"WARC-Target-URI")
            else:
                self.skip()

    cdef int html_metadata(self) except -2:
        cdef Py_ssize_t key
        cdef bint first = True, head_seen = False, links_seen = False
        while True:
            key = self.next_key(first)
            if key < 0:
                return PAGE_
            first = False
            if self.key_is(key, b"Head"):
                if head_seen:
                    raise Undecided
                head_seen = True
                self.base = self.member_text(b"Base")
            elif self.key_is(key, b"Links"):
                if links_seen:
                    raise Undecided
                links_seen = True
                self.links()
            else:
                self.skip()

    cdef object member_text(self, const char *name):
        """At a value, an object or null: its member `name`, a string (None where it is absent or null)."""
        cdef Py_ssize_t key
        cdef bint first = True, seen = False
        cdef object found = None
        if not self.opens_object():
            return None
        while True:
            key = self.next_key(first)
            if key < 0:
                return found
            first = False
            if self.key_is(key, name):
                if seen:
                    raise Undecided
                seen = True
                found = self.text(True)
            else:
                self.skip()

    cdef int links(self) except -1:
        skip_space(&self.c)
        if takes(&self.c, b"null", 4):
            return 0
        if self.c.pos >= self.c.end or self.c.data[self.c.pos] != c'[':
            raise Undecided
        self.c.pos += 1
        skip_space(&self.c)
        if self.c.pos < self.c.end and self.c.data[self.c.pos] == c']':
            self.c.pos += 1
            return 0
        while True:
            self.link()
            skip_space(&self.c)
            if self.c.pos >= self.c.end:
                raise Undecided
            self.c.pos += 1
            if self.c.data[self.c.pos - 1] == c']':
                return 0
            if self.c.data[self.c.pos - 1] != c',':
                raise Undecided

    cdef int link(self) except -1:
        """One link object, kept when its path is the image path. Its url, alt and title become text only then;
        in the others they are only checked to be what the slow reading would decode (UTF-8, a surrogate pair).
        A repeated member is left to the slow reading."""
        cdef Py_ssize_t key
        cdef bint first = True
        cdef Text path, url, alt, title
        cdef Text *member
        path.present = url.present = alt.present = title.present = False
        skip_space(&self.c)
        if self.c.pos >= self.c.end or self.c.data[self.c.pos] != c'{':
            raise Undecided
        self.c.pos += 1
        while True:
            key = self.next_key(first)
            if key < 0:
                break
            first = False
            if self.key_is(key, b"path"):
                member = &path
            elif self.key_is(key, b"url"):
                member = &url
            elif self.key_is(key, b"alt"):
                member = &alt
            elif self.key_is(key, b"title"):
                member = &title
            else:
                self.skip()
                continue
            if member.present:
                raise Undecided
            self.locate(member, member != &path and member != &url)
        if not (path.present and self.is_image_path(&path)):
            self.check_escaped(&url)
            self.check_escaped(&alt)
            self.check_escaped(&title)
            return 0
        self.srcs.append(self.decoded(&url) if url.present else "")
        self.alts.append(self.decoded(&alt))
        self.titles.append(self.decoded(&title))

    cdef int locate(self, Text *member, bint nullable) except -1:
        """At a value: where the string is (member.null for a null where `nullable`); Undecided for other types
        and for unescaped text that is not UTF-8."""
        skip_space(&self.c)
        member.present, member.null = True, False
        if nullable and takes(&self.c, b"null", 4):
            member.null = True
            return 0
        if self.c.pos >= self.c.end or self.c.data[self.c.pos] != c'"' or \
                scan_string(&self.c, &member.start, &member.escaped) < 0:
            raise Undecided
        member.stop = self.c.pos - 1
        if not member.escaped and not valid_utf8(self.c.data + member.start, member.stop - member.start):
            raise Undecided

    cdef int check_escaped(self, Text *member) except -1:
        if member.present and member.escaped:
            self.decoded(member)

    cdef int is_image_path(self, Text *path) except -1:
        cdef Py_ssize_t length = len(self.image_path)
        if path.escaped:
            return self.decoded(path).encode() == self.image_path
        return path.stop - path.start == length and \
            memcmp(self.c.data + path.start, <const char *>self.image_path, length) == 0

    cdef object decoded(self, Text *member):
        """The located string as str (None where absent or null)."""
        if not member.present or member.null:
            return None
        try:
            if member.escaped:
                return self.unescaped(member.start, member.stop)
            return (<const char *>self.c.data)[member.start:member.stop].decode("utf-8")
        except UnicodeDecodeError:
            raise Undecided from None


def image_links(bytes payload, bytes image_path):
    """(PAGE, base href, target uri, srcs, alts, titles) of the links whose path is image_path (the base href, the
    record's WARC-Target-URI, alts and titles None where absent), (NO_PAGE, None, ...) for a record without the
    links' branch, or (UNDECIDED, None, ...)."""
    cdef _Reader reader = _Reader(payload, image_path)
    try:
        found = reader.read()
    except Undecided:
        return UNDECIDED, None, None, None, None, None
    if found == NO_PAGE_:
        return NO_PAGE, None, None, None, None, None
    return PAGE, reader.base, reader.target, reader.srcs, reader.alts, reader.titles
