"""The compiled walk: Arrow string buffers in, Arrow list<int32> buffers out, no Python object per caption.

A caption's bytes are cut into tokens, each token is looked up in the automaton's token table, and the token ids
walk the automaton (pipeline.text.token_automaton). A caption's entry ids come out sorted and distinct, as
Matcher.match gives them.
- metaclip mode cuts tokens as MetaCLIP's `spacing` does: space, tab, newline and carriage return end a token
  (two in a row make an empty one), and each of , . ; : ? ! ` is a token of its own.
- default mode first writes an ASCII caption's default_normalize form into a scratch buffer (lowercase, the
  wrapped characters as tokens, possessive 's and lone quotes split off), then cuts it at whitespace, skipping
  empty tokens; a caption with other characters comes in already normalized (by Python) and is only cut.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.text.token_automaton import (
    EMIT_MASK,
    EMIT_RANGE,
    EMIT_SHIFT,
    EMPTY_EDGE,
    FAILS_TO_ROOT,
    FILTER_MULTIPLIER,
    FNV_OFFSET,
    FNV_PRIME,
    FOLLOWS,
    LENGTH_BITS,
    LONG,
    PACKED_BYTES,
    STATE_SHIFT,
    TokenAutomaton,
)
from pipeline.text.wrapped import DEFAULT_WRAPPED, METACLIP_SPACED, METACLIP_WRAPPED

REGULAR, SEPARATOR, OWN_TOKEN = 0, 1, 2  # what a byte does to the token it is in


def _byte_classes(separators: str, own_tokens: str = "") -> np.ndarray:
    classes = np.full(256, REGULAR, np.uint8)
    classes[[ord(char) for char in separators]] = SEPARATOR
    classes[[ord(char) for char in own_tokens]] = OWN_TOKEN
    return classes


METACLIP_CLASSES = _byte_classes(" " + "".join(METACLIP_SPACED), "".join(METACLIP_WRAPPED))
_ASCII_WHITESPACE = "".join(char for char in map(chr, range(128)) if char.isspace())  # where str.split() cuts
NORMALIZED_CLASSES = _byte_classes(_ASCII_WHITESPACE)  # the normalized text is cut there and its runs collapse
# default_normalize on ASCII: the wrapped characters stand as tokens of their own
DEFAULT_ASCII_CLASSES = _byte_classes(_ASCII_WHITESPACE, "".join(char for char in DEFAULT_WRAPPED if char.isascii()))
_WORD = np.zeros(256, np.bool_)  # Python's \w on ASCII
_WORD[[ord(char) for char in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"]] = True
_QUOTE, _SPACE, _S = ord("'"), ord(" "), ord("s")


@njit(cache=True, nogil=True, inline="always")
def _token_slot(source, start, end, value, packed, token_slots, long_tokens, token_bytes):
    """The slot of the token source[start:end] (FNV-1a hash `value`, bytes `packed` when short), or -1."""
    mask = np.uint64(len(token_slots) - 1)
    length = end - start
    is_long = length > PACKED_BYTES
    key = value if is_long else packed
    code = np.uint64(LONG) if is_long else np.uint64(length + 1)
    slot = value & mask
    while True:
        word = token_slots[slot, 1]
        if word == 0:
            return np.int64(-1)
        if token_slots[slot, 0] == key and (word & np.uint64(LENGTH_BITS)) == code:
            if not is_long:
                return np.int64(slot)
            begin, stop = np.int64(long_tokens[slot, 0]), np.int64(long_tokens[slot, 1])
            same = stop - begin == length
            index = 0
            while same and index < length:
                same = token_bytes[begin + index] == source[start + index]
                index += 1
            if same:
                return np.int64(slot)
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True, nogil=True, inline="always")
def _may_contain(key, bloom):
    """False when the filter proves the key absent (pipeline.text.token_automaton.filter_position)."""
    mixed = key * np.uint64(FILTER_MULTIPLIER)
    word = bloom[(mixed >> np.uint64(40)) & np.uint64(len(bloom) - 1)]
    bits = ((np.uint64(1) << (mixed & np.uint64(63))) | (np.uint64(1) << ((mixed >> np.uint64(6)) & np.uint64(63)))
            | (np.uint64(1) << ((mixed >> np.uint64(12)) & np.uint64(63))))
    return word & bits == bits


@njit(cache=True, nogil=True, inline="always")
def _step(state, fails_to_root, slot, root_step, edges, edge_filter, fail_resume):
    """Aho-Corasick's goto with failure links from a state past the root, on a token that follows another in
    some key: the step record of its target. `fails_to_root`: the state's fail target is the root, known from
    the step that led here, so the common miss reads neither the edges nor fail_resume."""
    mask = np.uint64(len(edges) - 1)
    while state != 0:
        key = (np.uint64(state) << np.uint64(32)) | np.uint64(slot)
        if _may_contain(key, edge_filter):
            probe = ((key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & mask
            while edges[probe, 0] != np.uint64(EMPTY_EDGE):
                if edges[probe, 0] == key:
                    return edges[probe, 1]
                probe = (probe + np.uint64(1)) & mask
        if fails_to_root:
            break
        state = fail_resume[state]
    return root_step


@njit(cache=True, nogil=True)
def _walk(source, start, end, classes, skip_empty, found, token_filter, token_slots, long_tokens, token_bytes,
          edges, edge_filter, fail_resume, emit_offsets, emit_ids):
    """Cut source[start:end] into tokens and walk them; the entry ids met are written to `found` (room for
    _most_found of them), their count returned."""
    found_count = 0
    state, fails_to_root = 0, True
    token_start = start
    value, packed = np.uint64(FNV_OFFSET), np.uint64(0)
    position = start
    while position <= end:  # one past the end closes the last token
        kind = classes[source[position]] if position < end else SEPARATOR
        if kind == REGULAR:
            byte = np.uint64(source[position])
            value = (value ^ byte) * np.uint64(FNV_PRIME)
            if position - token_start < PACKED_BYTES:
                packed |= byte << np.uint64(8 * (position - token_start))
            position += 1
            continue
        # the token before this byte ends here; an own-token byte is then a token of its own
        for piece in range(2 if kind == OWN_TOKEN else 1):
            if piece == 1:
                byte = np.uint64(source[position])
                token_start, value, packed = position, (np.uint64(FNV_OFFSET) ^ byte) * np.uint64(FNV_PRIME), byte
                token_end = position + 1
            else:
                token_end = position
                if skip_empty and token_end == token_start:
                    continue
            slot = -1
            if _may_contain(value, token_filter):
                slot = _token_slot(source, token_start, token_end, value, packed, token_slots, long_tokens,
                                   token_bytes)
            if slot < 0:  # a token no entry has: every run breaks here
                state = 0
                continue
            step = token_slots[slot, 1]  # the root's step on it
            if state != 0 and step & np.uint64(FOLLOWS):
                step = _step(state, fails_to_root, slot, step, edges, edge_filter, fail_resume)
            state = np.int64(step >> np.uint64(STATE_SHIFT))
            fails_to_root = step & np.uint64(FAILS_TO_ROOT) != 0
            emit = np.int64((step >> np.uint64(EMIT_SHIFT)) & np.uint64(EMIT_MASK))
            if emit == 0:
                continue
            if emit < EMIT_RANGE:
                found[found_count] = emit - 1
                found_count += 1
            else:
                for index in range(emit_offsets[emit - EMIT_RANGE], emit_offsets[emit - EMIT_RANGE + 1]):
                    found[found_count] = emit_ids[index]
                    found_count += 1
        position += 1
        token_start = position
        value, packed = np.uint64(FNV_OFFSET), np.uint64(0)
    return found_count


@njit(cache=True, nogil=True, inline="always")
def _most_found(length, largest_emit):
    """At most how many ids a walk of `length` bytes writes: each byte ends at most two tokens (a token and an
    own-token byte), one more token ends the text, and a step emits at most `largest_emit` ids. Sized before
    the walk, so the walk itself never checks for room."""
    return (2 * length + 1) * largest_emit


@njit(cache=True, nogil=True)
def _normalize_ascii(data, start, end, scratch):
    """default_normalize of an ASCII caption, before its whitespace collapses: written into `scratch` (at least
    3x the caption long); returns the length. The quote rules are matching._POSSESSIVE and _LONE_QUOTE."""
    written = 0
    for position in range(start, end):
        byte = data[position]
        if 65 <= byte <= 90:
            byte += 32
        kind = DEFAULT_ASCII_CLASSES[byte]
        if kind == OWN_TOKEN or byte == _QUOTE:
            before = position > start and _WORD[data[position - 1]]
            s_next = position + 1 < end and (data[position + 1] == _S or data[position + 1] == _S - 32)
            s_ends_word = s_next and not (position + 2 < end and _WORD[data[position + 2]])
            word_after = position + 1 < end and _WORD[data[position + 1]]
            if kind == OWN_TOKEN or (not before and not s_ends_word) or not word_after:  # wrapped, or a lone quote
                scratch[written], scratch[written + 1], scratch[written + 2] = _SPACE, byte, _SPACE
                written += 3
                continue
            if before and s_ends_word:  # possessive: 's becomes a token
                scratch[written] = _SPACE
                written += 1
        scratch[written] = byte
        written += 1
    return written


@njit(cache=True, nogil=True, inline="always")
def _insertion_sort(values, count):
    """In place: a caption matches a handful of entries, and a call to np.sort would allocate for each."""
    for index in range(1, count):
        value = values[index]
        position = index - 1
        while position >= 0 and values[position] > value:
            values[position + 1] = values[position]
            position -= 1
        values[position + 1] = value


@njit(cache=True, nogil=True)
def _match_rows(data, offsets, valid, ascii_rows, classes, skip_empty, token_filter, token_slots, long_tokens,
                token_bytes, edges, edge_filter, fail_resume, emit_offsets, emit_ids):
    count = len(offsets) - 1
    out_offsets = np.zeros(count + 1, np.int32)
    out_values = np.empty(max(16, count * 2), np.int32)
    largest_emit = max(1, np.max(emit_offsets[1:] - emit_offsets[:-1])) if len(emit_offsets) > 1 else 1
    found = np.empty(4096, np.int32)
    scratch = np.empty(0, np.uint8)
    written = 0
    for row in range(count):
        out_offsets[row] = written
        if not valid[row]:
            continue
        start, end = offsets[row], offsets[row + 1]
        source, first, last = data, start, end
        if ascii_rows[row]:
            if len(scratch) < 3 * (end - start):
                scratch = np.empty(6 * (end - start), np.uint8)
            source, first, last = scratch, 0, _normalize_ascii(data, start, end, scratch)
        if len(found) < _most_found(last - first, largest_emit):
            found = np.empty(2 * _most_found(last - first, largest_emit), np.int32)
        found_count = _walk(source, first, last, classes, skip_empty, found, token_filter, token_slots, long_tokens,
                            token_bytes, edges, edge_filter, fail_resume, emit_offsets, emit_ids)
        if found_count:
            _insertion_sort(found, found_count)
            if written + found_count > len(out_values):
                out_values = np.concatenate((out_values, np.empty(max(len(out_values), found_count), np.int32)))
            previous = -1
            for index in range(found_count):
                if found[index] != previous:
                    previous = out_values[written] = found[index]
                    written += 1
    out_offsets[count] = written
    return out_offsets, out_values[:written]


def match_rows(automaton: TokenAutomaton, data: np.ndarray, offsets: np.ndarray, valid: np.ndarray,
               mode: str, ascii_rows: np.ndarray | None = None):
    """(offsets, values) of the list<int32> of each caption's entry ids. In default mode, `ascii_rows` marks
    the captions to normalize here; the others must come normalized."""
    if mode == "metaclip":
        classes, skip_empty, ascii_rows = METACLIP_CLASSES, False, np.zeros(len(valid), np.bool_)
    else:
        classes, skip_empty = NORMALIZED_CLASSES, True
    return _match_rows(data, offsets, valid, ascii_rows, classes, skip_empty, automaton.token_filter,
                       automaton.token_slots, automaton.long_tokens, automaton.token_bytes, automaton.edges,
                       automaton.edge_filter, automaton.fail_resume, automaton.emit_offsets, automaton.emit_ids)
