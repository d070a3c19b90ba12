# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Content uids of a whole Arrow batch in C: BLAKE2b-128 (RFC 7693) of url + 0x1f + caption, as 32 lowercase hex
digits, the same as pipeline.hashing.content_uid, which hashes one pair at a time through hashlib (1.5 us a row
of Python around it; here about 0.2). Written from the RFC: hashlib has no call for many messages at once.
A top-level module for the same reason as metacurate_walk; pipeline.hashing.content_uids falls back to hashlib
where it is missing."""

from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

import numpy as np
import pyarrow as pa

cdef uint64_t IV[8]
IV[:] = [0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
         0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179]
cdef uint8_t SIGMA[12][16]  # the RFC's ten rows, the first two again for rounds 10 and 11
SIGMA[:] = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
            [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
            [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
            [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
            [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
            [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
            [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
            [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
            [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
            [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
            [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3]]
cdef int DIGEST_BYTES = 16
cdef uint8_t SEPARATOR = 0x1F  # between url and caption, as content_uid
cdef char *HEX = b"0123456789abcdef"


cdef inline uint64_t rotate(uint64_t word, int bits) noexcept nogil:
    return (word >> bits) | (word << (64 - bits))


cdef inline void mix(uint64_t *v, int a, int b, int c, int d, uint64_t x, uint64_t y) noexcept nogil:
    """The RFC's G function."""
    v[a] = v[a] + v[b] + x
    v[d] = rotate(v[d] ^ v[a], 32)
    v[c] = v[c] + v[d]
    v[b] = rotate(v[b] ^ v[c], 24)
    v[a] = v[a] + v[b] + y
    v[d] = rotate(v[d] ^ v[a], 16)
    v[c] = v[c] + v[d]
    v[b] = rotate(v[b] ^ v[c], 63)


cdef void compress(uint64_t *h, const uint8_t *block, uint64_t counter, bint last) noexcept nogil:
    """The RFC's F function on one 128-byte block; `counter`: the bytes hashed so far, this block's included."""
    cdef uint64_t v[16]
    cdef uint64_t m[16]
    cdef int i, round_
    cdef const uint8_t *s
    memcpy(m, block, 128)  # little-endian words: this machine's order on x86-64 and arm64
    for i in range(8):
        v[i] = h[i]
        v[i + 8] = IV[i]
    v[12] ^= counter
    if last:
        v[14] = ~v[14]
    for round_ in range(12):
        s = SIGMA[round_]
        mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


cdef void blake2b_hex(const uint8_t *message, int64_t length, char *out) noexcept nogil:
    """BLAKE2b with a 16-byte digest and no key, written as 32 hex digits into `out`."""
    cdef uint64_t h[8]
    cdef uint8_t block[128]
    cdef uint8_t digest[64]
    cdef int64_t done = 0
    cdef int i
    for i in range(8):
        h[i] = IV[i]
    h[0] ^= 0x01010000 ^ DIGEST_BYTES
    while length - done > 128:
        compress(h, message + done, done + 128, False)
        done += 128
    memset(block, 0, 128)
    memcpy(block, message + done, length - done)
    compress(h, block, length, True)
    memcpy(digest, h, 64)
    for i in range(DIGEST_BYTES):
        out[2 * i] = HEX[digest[i] >> 4]
        out[2 * i + 1] = HEX[digest[i] & 15]


cdef const uint8_t *data_of(array):
    """The data buffer's address of a binary or string Arrow array (NULL when it has none)."""
    buffer = array.buffers()[2]
    return NULL if buffer is None or buffer.size == 0 else <const uint8_t *> <size_t> buffer.address


def content_uids(urls, captions):
    """The content uid of each (url, caption) pair of two aligned Arrow binary or string arrays with no nulls,
    as an Arrow string array."""
    cdef int64_t count = len(urls), row, url_length, caption_length, longest = 0
    cdef const int64_t[::1] url_offsets = _offsets(urls)
    cdef const int64_t[::1] caption_offsets = _offsets(captions)
    cdef const uint8_t *url_data = data_of(urls)
    cdef const uint8_t *caption_data = data_of(captions)
    for row in range(count):
        longest = max(longest, url_offsets[row + 1] - url_offsets[row] + caption_offsets[row + 1]
                      - caption_offsets[row])
    hex_digits = bytearray(2 * DIGEST_BYTES * count)
    cdef char *out = hex_digits
    cdef uint8_t *message = <uint8_t *> malloc(longest + 1)
    if message == NULL:
        raise MemoryError
    with nogil:
        for row in range(count):
            url_length = url_offsets[row + 1] - url_offsets[row]
            caption_length = caption_offsets[row + 1] - caption_offsets[row]
            if url_length:
                memcpy(message, url_data + url_offsets[row], url_length)
            message[url_length] = SEPARATOR
            if caption_length:
                memcpy(message + url_length + 1, caption_data + caption_offsets[row], caption_length)
            blake2b_hex(message, url_length + 1 + caption_length, out + 2 * DIGEST_BYTES * row)
    free(message)
    offsets = np.arange(0, 2 * DIGEST_BYTES * (count + 1), 2 * DIGEST_BYTES, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(hex_digits)])


def _offsets(array) -> np.ndarray:
    """The value offsets of a (large) binary or string array, as int64, from its own offset on."""
    if array.null_count:
        raise ValueError("content_uids takes no nulls")
    wide = array.type in (pa.large_binary(), pa.large_string())
    offsets = np.frombuffer(array.buffers()[1], np.int64 if wide else np.int32)
    return offsets[array.offset: array.offset + len(array) + 1].astype(np.int64)
