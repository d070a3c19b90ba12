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

cdef int DIGEST_BYTES = 16
cdef uint8_t SEPARATOR = 0x1F  # between url and caption, as content_uid
cdef char *HEX = b"0123456789abcdef"


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* The RFC's F function with its twelve rounds written out, so that the compiler keeps the sixteen working
       words in registers and every message word index is a constant. */
    static const uint64_t METACURATE_IV[8] = {
        0x6A09E667F3BCC908ULL, 0xBB67AE8584CAA73BULL, 0x3C6EF372FE94F82BULL, 0xA54FF53A5F1D36F1ULL,
        0x510E527FADE682D1ULL, 0x9B05688C2B3E6C1FULL, 0x1F83D9ABFB41BD6BULL, 0x5BE0CD19137E2179ULL};
    #define METACURATE_ROTR(word, bits) (((word) >> (bits)) | ((word) << (64 - (bits))))
    #define METACURATE_G(a, b, c, d, x, y) do { \\
        a = a + b + (x); d = METACURATE_ROTR(d ^ a, 32); c = c + d; b = METACURATE_ROTR(b ^ c, 24); \\
        a = a + b + (y); d = METACURATE_ROTR(d ^ a, 16); c = c + d; b = METACURATE_ROTR(b ^ c, 63); } while (0)
    #define METACURATE_ROUND(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15) do { \\
        METACURATE_G(v0, v4, v8, v12, m[s0], m[s1]); METACURATE_G(v1, v5, v9, v13, m[s2], m[s3]); \\
        METACURATE_G(v2, v6, v10, v14, m[s4], m[s5]); METACURATE_G(v3, v7, v11, v15, m[s6], m[s7]); \\
        METACURATE_G(v0, v5, v10, v15, m[s8], m[s9]); METACURATE_G(v1, v6, v11, v12, m[s10], m[s11]); \\
        METACURATE_G(v2, v7, v8, v13, m[s12], m[s13]); METACURATE_G(v3, v4, v9, v14, m[s14], m[s15]); } while (0)

    static void metacurate_compress(uint64_t *h, const uint8_t *block, uint64_t counter, int last) {
        uint64_t m[16];
        memcpy(m, block, 128);  /* little-endian words: this machine's order on x86-64 and arm64 */
        uint64_t v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
        uint64_t v8 = METACURATE_IV[0], v9 = METACURATE_IV[1], v10 = METACURATE_IV[2], v11 = METACURATE_IV[3];
        uint64_t v12 = METACURATE_IV[4] ^ counter, v13 = METACURATE_IV[5];
        uint64_t v14 = last ? ~METACURATE_IV[6] : METACURATE_IV[6], v15 = METACURATE_IV[7];
        METACURATE_ROUND(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        METACURATE_ROUND(14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3);
        METACURATE_ROUND(11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4);
        METACURATE_ROUND(7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8);
        METACURATE_ROUND(9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13);
        METACURATE_ROUND(2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9);
        METACURATE_ROUND(12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11);
        METACURATE_ROUND(13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10);
        METACURATE_ROUND(6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5);
        METACURATE_ROUND(10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0);
        METACURATE_ROUND(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        METACURATE_ROUND(14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3);
        h[0] ^= v0 ^ v8; h[1] ^= v1 ^ v9; h[2] ^= v2 ^ v10; h[3] ^= v3 ^ v11;
        h[4] ^= v4 ^ v12; h[5] ^= v5 ^ v13; h[6] ^= v6 ^ v14; h[7] ^= v7 ^ v15;
    }
    """
    const uint64_t *METACURATE_IV
    void compress "metacurate_compress"(uint64_t *h, const uint8_t *block, uint64_t counter, bint last) nogil


cdef void blake2b_hex(const uint8_t *message, int64_t length, char *out) noexcept nogil:
    """BLAKE2b with a 16-byte digest and no key, written as 32 hex digits into `out`."""
    cdef uint64_t h[8]
    cdef uint8_t block[128]
    cdef uint8_t digest[64]
    cdef int64_t done = 0
    cdef int i
    for i in range(8):
        h[i] = METACURATE_IV[i]
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
