# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled walk over a token automaton (pipeline.text.token_automaton): Arrow string buffers in, the buffers
of a list<int32> of each caption's sorted distinct entry ids out, no Python object per caption.

Compiled C rather than a JIT: a worker that imports it carries a few hundred KB, not a compiler (numba's import
alone was 116 MiB of resident memory per worker). A top-level module, not inside `pipeline`, because Spark
executors import `pipeline` from a shipped zip, which cannot hold a compiled module; this one comes with the
project's install (pipeline.text.token_kernel falls back to pyahocorasick where it is missing).

The automaton's layout and the byte tables are Python's (token_automaton, wrapped, token_kernel); the constants
are read from there when this module is imported, so each is stated once.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

import numpy as np

from pipeline.text import token_automaton as _layout, wrapped as _wrapped

LAYOUT_VERSION = _layout.FORMAT_VERSION  # the automaton layout this walk reads (checked by token_kernel)

cdef uint64_t FNV_OFFSET = _layout.FNV_OFFSET, FNV_PRIME = _layout.FNV_PRIME
cdef uint64_t FILTER_MULTIPLIER = _layout.FILTER_MULTIPLIER, TRANSITION_MULTIPLIER = _layout.TRANSITION_MULTIPLIER
cdef uint64_t EMPTY_EDGE = _layout.EMPTY_EDGE, LENGTH_BITS = _layout.LENGTH_BITS, LONG = _layout.LONG
cdef uint64_t FOLLOWS = _layout.FOLLOWS, FAILS_TO_ROOT = _layout.FAILS_TO_ROOT
cdef uint64_t EMIT_SHIFT = _layout.EMIT_SHIFT, EMIT_MASK = _layout.EMIT_MASK, STATE_SHIFT = _layout.STATE_SHIFT
cdef int64_t EMIT_RANGE = _layout.EMIT_RANGE, PACKED_BYTES = _layout.PACKED_BYTES

cdef uint8_t REGULAR = _wrapped.REGULAR, SEPARATOR = _wrapped.SEPARATOR, OWN_TOKEN = _wrapped.OWN_TOKEN

cdef uint8_t QUOTE = ord("'"), SPACE = ord(" "), LOWER_S = ord("s"), UPPER_S = ord("S")


cdef struct Automaton:  # the tables as raw pointers, for the walk's inner loop
    const uint64_t *token_filter
    uint64_t token_filter_mask
    const uint64_t *token_slots  # [size, 2]
    uint64_t token_mask
    const uint32_t *long_tokens  # [size, 2]
    const uint8_t *token_bytes
    const uint64_t *edges  # [size, 2]
    uint64_t edge_mask
    const uint64_t *edge_filter
    uint64_t edge_filter_mask
    const int32_t *fail_resume
    const int64_t *emit_offsets
    const int32_t *emit_ids


cdef inline bint may_contain(uint64_t key, const uint64_t *bloom, uint64_t mask) noexcept nogil:
    """False when the filter proves the key absent (token_automaton.filter_position)."""
    cdef uint64_t mixed = key * FILTER_MULTIPLIER
    cdef uint64_t bits = ((<uint64_t> 1 << (mixed & 63)) | (<uint64_t> 1 << ((mixed >> 6) & 63))
                          | (<uint64_t> 1 << ((mixed >> 12) & 63)))
    return bloom[(mixed >> 40) & mask] & bits == bits


cdef inline int64_t token_slot(const uint8_t *source, int64_t start, int64_t end, uint64_t value, uint64_t packed,
                               const Automaton *a) noexcept nogil:
    """The slot of the token source[start:end] (FNV-1a hash `value`, bytes `packed` when short), or -1."""
    cdef int64_t length = end - start, begin, index
    cdef bint is_long = length > PACKED_BYTES
    cdef uint64_t key = value if is_long else packed
    cdef uint64_t code = LONG if is_long else <uint64_t> (length + 1)
    cdef uint64_t slot = value & a.token_mask, word
    while True:
        word = a.token_slots[2 * slot + 1]
        if word == 0:
            return -1
        if a.token_slots[2 * slot] == key and (word & LENGTH_BITS) == code:
            if not is_long:
                return <int64_t> slot
            begin = a.long_tokens[2 * slot]
            if a.long_tokens[2 * slot + 1] - begin == length:
                index = 0
                while index < length and a.token_bytes[begin + index] == source[start + index]:
                    index += 1
                if index == length:
                    return <int64_t> slot
        slot = (slot + 1) & a.token_mask


cdef inline uint64_t step_from(int64_t state, bint fails_to_root, int64_t slot, uint64_t root_step,
                               const Automaton *a) noexcept nogil:
    """Aho-Corasick's goto with failure links from a state past the root, on a token that follows another in
    some key: the step record of its target. `fails_to_root`: the state's fail target is the root, known from
    the step that led here, so the common miss reads neither the edges nor fail_resume."""
    cdef uint64_t key, probe
    while state != 0:
        key = (<uint64_t> state << 32) | <uint64_t> slot
        if may_contain(key, a.edge_filter, a.edge_filter_mask):
            probe = ((key * TRANSITION_MULTIPLIER) >> 32) & a.edge_mask
            while a.edges[2 * probe] != EMPTY_EDGE:
                if a.edges[2 * probe] == key:
                    return a.edges[2 * probe + 1]
                probe = (probe + 1) & a.edge_mask
        if fails_to_root:
            break
        state = a.fail_resume[state]
    return root_step


cdef int64_t walk(const uint8_t *source, int64_t start, int64_t end, const uint8_t *classes, bint skip_empty,
                  int32_t *found, const Automaton *a) noexcept nogil:
    """Cut source[start:end] into tokens and walk them; the entry ids met are written to `found` (room for
    most_found of them), their count returned."""
    cdef int64_t found_count = 0, state = 0, token_start = start, token_end, position = start, slot, emit, index
    cdef bint fails_to_root = True
    cdef uint64_t value = FNV_OFFSET, packed = 0, byte, step
    cdef uint8_t kind
    cdef int piece, pieces
    while position <= end:  # one past the end closes the last token
        kind = classes[source[position]] if position < end else SEPARATOR
        if kind == REGULAR:
            byte = source[position]
            value = (value ^ byte) * FNV_PRIME
            if position - token_start < PACKED_BYTES:
                packed |= byte << (8 * (position - token_start))
            position += 1
            continue
        # the token before this byte ends here; an own-token byte is then a token of its own
        pieces = 2 if kind == OWN_TOKEN else 1
        for piece in range(pieces):
            if piece == 1:
                byte = source[position]
                token_start, value, packed = position, (FNV_OFFSET ^ byte) * FNV_PRIME, byte
                token_end = position + 1
            else:
                token_end = position
                if skip_empty and token_end == token_start:
                    continue
            slot = -1
            if may_contain(value, a.token_filter, a.token_filter_mask):
                slot = token_slot(source, token_start, token_end, value, packed, a)
            if slot < 0:  # a token no entry has: every run breaks here
                state = 0
                continue
            step = a.token_slots[2 * slot + 1]  # the root's step on it
            if state != 0 and step & FOLLOWS:
                step = step_from(state, fails_to_root, slot, step, a)
            state = <int64_t> (step >> STATE_SHIFT)
            fails_to_root = step & FAILS_TO_ROOT != 0
            emit = <int64_t> ((step >> EMIT_SHIFT) & EMIT_MASK)
            if emit == 0:
                continue
            if emit < EMIT_RANGE:
                found[found_count] = <int32_t> (emit - 1)
                found_count += 1
            else:
                for index in range(a.emit_offsets[emit - EMIT_RANGE], a.emit_offsets[emit - EMIT_RANGE + 1]):
                    found[found_count] = a.emit_ids[index]
                    found_count += 1
        position += 1
        token_start = position
        value, packed = FNV_OFFSET, 0
    return found_count


cdef inline int64_t most_found(int64_t length, int64_t largest_emit) noexcept nogil:
    """At most how many ids a walk of `length` bytes writes: each byte ends at most two tokens (a token and an
    own-token byte), one more token ends the text, and a step emits at most `largest_emit` ids. Sized before
    the walk, so the walk itself never checks for room."""
    return (2 * length + 1) * largest_emit


cdef int64_t normalize_ascii(const uint8_t *data, int64_t start, int64_t end, uint8_t *scratch,
                             const uint8_t *classes, const uint8_t *word_bytes) noexcept nogil:
    """default_normalize of an ASCII caption, before its whitespace collapses: written into `scratch` (at least
    3x the caption long); returns the length. The quote rules are matching._POSSESSIVE and _LONE_QUOTE."""
    cdef int64_t written = 0, position
    cdef uint8_t byte, kind
    cdef bint before, s_next, s_ends_word, word_after
    for position in range(start, end):
        byte = data[position]
        if 65 <= byte <= 90:
            byte += 32
        kind = classes[byte]
        if kind == OWN_TOKEN or byte == QUOTE:
            before = position > start and word_bytes[data[position - 1]]
            s_next = position + 1 < end and (data[position + 1] == LOWER_S or data[position + 1] == UPPER_S)
            s_ends_word = s_next and not (position + 2 < end and word_bytes[data[position + 2]])
            word_after = position + 1 < end and word_bytes[data[position + 1]]
            if kind == OWN_TOKEN or (not before and not s_ends_word) or not word_after:  # wrapped, or a lone quote
                scratch[written] = SPACE
                scratch[written + 1] = byte
                scratch[written + 2] = SPACE
                written += 3
                continue
            if before and s_ends_word:  # possessive: 's becomes a token
                scratch[written] = SPACE
                written += 1
        scratch[written] = byte
        written += 1
    return written


cdef inline void insertion_sort(int32_t *values, int64_t count) noexcept nogil:
    """In place: a caption matches a handful of entries."""
    cdef int64_t index, position
    cdef int32_t value
    for index in range(1, count):
        value = values[index]
        position = index - 1
        while position >= 0 and values[position] > value:
            values[position + 1] = values[position]
            position -= 1
        values[position + 1] = value


cdef void *grown(void *buffer, size_t size) nogil:
    """realloc that keeps the old buffer's ownership clear: NULL (and the old buffer freed) when out of memory."""
    cdef void *larger = realloc(buffer, size)
    if larger == NULL:
        free(buffer)
    return larger


def match_rows(const uint8_t[::1] data, offsets, const uint8_t[::1] valid, const uint8_t[::1] ascii_rows,
               const uint8_t[::1] classes, bint skip_empty, const uint8_t[::1] ascii_classes,
               const uint8_t[::1] word_bytes, automaton):
    """(offsets, values) of the list<int32> of each caption's entry ids. `offsets`: the Arrow string offsets
    (int32 or int64); rows marked in `ascii_rows` are default-normalized here (`ascii_classes`, `word_bytes`)."""
    cdef const int64_t[::1] offsets64 = np.asarray(offsets, np.int64)
    cdef const uint64_t[::1] token_filter = automaton.token_filter
    cdef const uint64_t[:, ::1] token_slots = automaton.token_slots
    cdef const uint32_t[:, ::1] long_tokens = automaton.long_tokens
    cdef const uint8_t[::1] token_bytes = automaton.token_bytes
    cdef const uint64_t[:, ::1] edges = automaton.edges
    cdef const uint64_t[::1] edge_filter = automaton.edge_filter
    cdef const int32_t[::1] fail_resume = automaton.fail_resume
    cdef const int64_t[::1] emit_offsets = automaton.emit_offsets
    cdef const int32_t[::1] emit_ids = automaton.emit_ids
    cdef Automaton a
    a.token_filter, a.token_filter_mask = &token_filter[0], token_filter.shape[0] - 1
    a.token_slots, a.token_mask = &token_slots[0, 0], token_slots.shape[0] - 1
    a.long_tokens = &long_tokens[0, 0]
    a.token_bytes = &token_bytes[0] if token_bytes.shape[0] else NULL
    a.edges, a.edge_mask = &edges[0, 0], edges.shape[0] - 1
    a.edge_filter, a.edge_filter_mask = &edge_filter[0], edge_filter.shape[0] - 1
    a.fail_resume = &fail_resume[0]
    a.emit_offsets = &emit_offsets[0]
    a.emit_ids = &emit_ids[0] if emit_ids.shape[0] else NULL
    cdef int64_t largest_emit = 1, index
    for index in range(emit_offsets.shape[0] - 1):
        largest_emit = max(largest_emit, emit_offsets[index + 1] - emit_offsets[index])

    cdef int64_t count = offsets64.shape[0] - 1, row, start, end, first, last, found_count, written = 0
    out_offsets_array = np.zeros(count + 1, np.int32)
    cdef int32_t[::1] out_offsets = out_offsets_array
    cdef const uint8_t *text = &data[0] if data.shape[0] else NULL
    cdef const uint8_t *source
    cdef int64_t out_room = max(16, 2 * count), found_room = 4096, scratch_room = 0, needed
    cdef int32_t *out_values = <int32_t *> malloc(out_room * sizeof(int32_t))
    cdef int32_t *found = <int32_t *> malloc(found_room * sizeof(int32_t))
    cdef uint8_t *scratch = NULL
    cdef int32_t previous
    cdef bint out_of_memory = out_values == NULL or found == NULL
    with nogil:
        for row in range(count):
            if out_of_memory:
                break
            out_offsets[row] = <int32_t> written
            if not valid[row]:
                continue
            start, end = offsets64[row], offsets64[row + 1]
            source, first, last = text, start, end
            if ascii_rows[row]:
                if scratch_room < 3 * (end - start):
                    scratch_room = 6 * (end - start)
                    scratch = <uint8_t *> grown(scratch, scratch_room)
                    if scratch == NULL:
                        out_of_memory = True
                        break
                source, first, last = scratch, 0, normalize_ascii(text, start, end, scratch, &ascii_classes[0],
                                                                  &word_bytes[0])
            needed = most_found(last - first, largest_emit)
            if found_room < needed:
                found_room = 2 * needed
                found = <int32_t *> grown(found, found_room * sizeof(int32_t))
                if found == NULL:
                    out_of_memory = True
                    break
            found_count = walk(source, first, last, &classes[0], skip_empty, found, &a)
            if found_count == 0:
                continue
            insertion_sort(found, found_count)
            if written + found_count > out_room:
                out_room = max(2 * out_room, written + found_count)
                out_values = <int32_t *> grown(out_values, out_room * sizeof(int32_t))
                if out_values == NULL:
                    out_of_memory = True
                    break
            previous = -1
            for index in range(found_count):
                if found[index] != previous:
                    previous = found[index]
                    out_values[written] = previous
                    written += 1
    free(found)
    free(scratch)
    if out_of_memory:
        free(out_values)
        raise MemoryError("the compiled walk ran out of memory")
    out_offsets[count] = <int32_t> written
    values_array = np.empty(written, np.int32)
    cdef int32_t[::1] values = values_array
    if written:
        memcpy(&values[0], out_values, written * sizeof(int32_t))
    free(out_values)
    return out_offsets_array, values_array
