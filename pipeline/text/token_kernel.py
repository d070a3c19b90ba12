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
    EMPTY_EDGE,
    FAIL,
    FNV_OFFSET,
    FNV_PRIME,
    OUTPUT_END,
    OUTPUT_LINK,
    OUTPUT_START,
    PACKED_BYTES,
    TokenAutomaton,
)

REGULAR, SEPARATOR, OWN_TOKEN = 0, 1, 2  # what a byte does to the token it is in


def _byte_classes(separators: str, own_tokens: str = "") -> np.ndarray:
    classes = np.full(256, REGULAR, np.uint8)
    classes[[ord(char) for char in separators]] = SEPARATOR
    classes[[ord(char) for char in own_tokens]] = OWN_TOKEN
    return classes


METACLIP_CLASSES = _byte_classes(" \t\n\r", ",.;:?!`")
# str.split()'s ASCII whitespace: the normalized text is cut there and its runs collapse
NORMALIZED_CLASSES = _byte_classes(" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f")
# default_normalize on ASCII: these stand as tokens of their own (matching._DEFAULT_WRAPPED's ASCII part)
DEFAULT_ASCII_CLASSES = _byte_classes(" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f", ",.;:?!`\"()[]{}<>/\\|-")
_WORD = np.zeros(256, np.bool_)  # Python's \w on ASCII
_WORD[[ord(char) for char in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"]] = True
_QUOTE, _SPACE, _S = ord("'"), ord(" "), ord("s")


@njit(cache=True, nogil=True, inline="always")
def _token_id(source, start, end, value, packed, token_slots, token_offsets, token_bytes):
    """The id of the token source[start:end] (FNV-1a hash `value`, bytes `packed` when short), or -1."""
    mask = np.uint64(len(token_slots) - 1)
    length = end - start
    key = packed if length <= PACKED_BYTES else value
    slot = value & mask
    while True:
        meta = token_slots[slot, 1]
        if meta == 0:
            return -1
        if token_slots[slot, 0] == key and (meta & np.uint64(0xFFFFFFFF)) == np.uint64(length):
            token = np.int64(meta >> np.uint64(32)) - 1
            if length <= PACKED_BYTES:
                return token
            begin = token_offsets[token]
            same = True
            for index in range(length):
                if token_bytes[begin + index] != source[start + index]:
                    same = False
                    break
            if same:
                return token
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True, nogil=True, inline="always")
def _step(state, token, root_next, edges, states):
    """Aho-Corasick's goto with failure links, one token."""
    if token < 0:  # a token no entry has: every run breaks here
        return 0
    mask = np.uint64(len(edges) - 1)
    while state != 0:
        key = (np.uint64(state) << np.uint64(32)) | np.uint64(token)
        slot = ((key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & mask
        while edges[slot, 0] != np.uint64(EMPTY_EDGE):
            if edges[slot, 0] == key:
                return np.int64(edges[slot, 1])
            slot = (slot + np.uint64(1)) & mask
        state = states[state, FAIL]
    return root_next[token]


@njit(cache=True, nogil=True)
def _walk(source, start, end, classes, skip_empty, found, found_count, token_slots, token_offsets, token_bytes,
          root_next, edges, states, output_ids):
    """Cut source[start:end] into tokens and walk them; the entry ids met are appended to `found`."""
    state = 0
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
            token = _token_id(source, token_start, token_end, value, packed, token_slots, token_offsets,
                              token_bytes)
            state = _step(state, token, root_next, edges, states)
            emit = state if states[state, OUTPUT_START] < states[state, OUTPUT_END] else states[state, OUTPUT_LINK]
            while emit != 0:
                for index in range(states[emit, OUTPUT_START], states[emit, OUTPUT_END]):
                    if found_count == len(found):
                        found = np.concatenate((found, np.empty(len(found), np.int32)))
                    found[found_count] = output_ids[index]
                    found_count += 1
                emit = states[emit, OUTPUT_LINK]
        position += 1
        token_start = position
        value, packed = np.uint64(FNV_OFFSET), np.uint64(0)
    return found, found_count


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
def _match_rows(data, offsets, valid, ascii_rows, classes, skip_empty, token_slots, token_offsets, token_bytes,
                root_next, edges, states, output_ids):
    count = len(offsets) - 1
    out_offsets = np.zeros(count + 1, np.int32)
    out_values = np.empty(max(16, count * 2), np.int32)
    found = np.empty(64, np.int32)
    scratch = np.empty(0, np.uint8)
    written = 0
    for row in range(count):
        out_offsets[row] = written
        if not valid[row]:
            continue
        start, end = offsets[row], offsets[row + 1]
        if ascii_rows[row]:
            if len(scratch) < 3 * (end - start):
                scratch = np.empty(6 * (end - start), np.uint8)
            length = _normalize_ascii(data, start, end, scratch)
            found, found_count = _walk(scratch, 0, length, classes, skip_empty, found, 0, token_slots,
                                       token_offsets, token_bytes, root_next, edges, states, output_ids)
        else:
            found, found_count = _walk(data, start, end, classes, skip_empty, found, 0, token_slots, token_offsets,
                                       token_bytes, root_next, edges, states, output_ids)
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
    return _match_rows(data, offsets, valid, ascii_rows, classes, skip_empty, automaton.token_slots,
                       automaton.token_offsets, automaton.token_bytes, automaton.root_next, automaton.edges,
                       automaton.states, automaton.output_ids)
