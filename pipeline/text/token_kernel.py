"""The compiled walk: Arrow string buffers in, Arrow list<int32> buffers out, no Python object per caption.

Each caption's UTF-8 bytes are cut into tokens as MetaCLIP's `spacing` cuts them (space, tab, newline and
carriage return end a token; each of , . ; : ? ! ` is a token of its own), each token is looked up in the
automaton's token table, and the token ids walk the automaton (pipeline.text.token_automaton). Captions that
default mode has normalized are cut at single spaces only. A caption's entry ids come out sorted and distinct,
as Matcher.match gives them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.text.token_automaton import FNV_OFFSET, FNV_PRIME, TokenAutomaton

_SEPARATOR = np.zeros(256, np.bool_)
_SEPARATOR[[ord(char) for char in " \t\n\r"]] = True
_OWN_TOKEN = np.zeros(256, np.bool_)
_OWN_TOKEN[[ord(char) for char in ",.;:?!`"]] = True
_SPACE = np.zeros(256, np.bool_)
_SPACE[ord(" ")] = True
_NO_OWN_TOKEN = np.zeros(256, np.bool_)
_EMPTY_KEY = np.uint64(np.iinfo(np.uint64).max)


@njit(cache=True, nogil=True, inline="always")
def _token_id(data, start, end, value, slots_hash, slots_id, token_offsets, token_bytes):
    """The id of the token data[start:end] whose FNV-1a hash is `value`, or -1 when no entry has it."""
    mask = np.uint64(len(slots_id) - 1)
    slot = value & mask
    while True:
        token = slots_id[slot]
        if token < 0:
            return -1
        if slots_hash[slot] == value:
            begin = token_offsets[token]
            if token_offsets[token + 1] - begin == end - start:
                same = True
                for index in range(end - start):
                    if token_bytes[begin + index] != data[start + index]:
                        same = False
                        break
                if same:
                    return token
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True, nogil=True, inline="always")
def _step(state, token, root_next, edge_keys, edge_next, fail):
    """Aho-Corasick's goto with failure links, one token."""
    if token < 0:  # a token no entry has: every run breaks here
        return 0
    mask = np.uint64(len(edge_next) - 1)
    while state != 0:
        key = (np.uint64(state) << np.uint64(32)) | np.uint64(token)
        slot = ((key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & mask
        while edge_keys[slot] != _EMPTY_KEY:
            if edge_keys[slot] == key:
                return edge_next[slot]
            slot = (slot + np.uint64(1)) & mask
        state = fail[state]
    return root_next[token]


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
def _match_tokens(data, offsets, valid, separator, own_token, slots_hash, slots_id, token_offsets, token_bytes,
                    root_next, edge_keys, edge_next, fail, output_start, output_ids, output_link):
    count = len(offsets) - 1
    out_offsets = np.zeros(count + 1, np.int32)
    out_values = np.empty(max(16, count * 2), np.int32)
    found = np.empty(64, np.int32)
    written = 0
    for row in range(count):
        out_offsets[row] = written
        if not valid[row]:
            continue
        found_count = 0
        state = 0
        start = offsets[row]
        end = offsets[row + 1]
        token_start = start
        value = np.uint64(FNV_OFFSET)
        position = start
        while position <= end:  # one past the end closes the last token
            byte = data[position] if position < end else 32
            if not (separator[byte] or own_token[byte]):
                value = (value ^ np.uint64(byte)) * np.uint64(FNV_PRIME)
                position += 1
                continue
            # the token before this byte ends here; an own-token byte is then a token of its own
            pieces = 2 if own_token[byte] else 1
            for piece in range(pieces):
                if piece == 1:
                    token_start, value = position, (np.uint64(FNV_OFFSET) ^ np.uint64(byte)) * np.uint64(FNV_PRIME)
                    token_end = position + 1
                else:
                    token_end = position
                token = _token_id(data, token_start, token_end, value, slots_hash, slots_id, token_offsets,
                                  token_bytes)
                state = _step(state, token, root_next, edge_keys, edge_next, fail)
                emit = state if output_start[state] < output_start[state + 1] else output_link[state]
                while emit != 0:
                    for index in range(output_start[emit], output_start[emit + 1]):
                        if found_count == len(found):
                            found = np.concatenate((found, np.empty(len(found), np.int32)))
                        found[found_count] = output_ids[index]
                        found_count += 1
                    emit = output_link[emit]
            position += 1
            token_start = position
            value = np.uint64(FNV_OFFSET)
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


def match_metaclip(automaton: TokenAutomaton, data: np.ndarray, offsets: np.ndarray, valid: np.ndarray):
    """(offsets, values) of the list<int32> of each caption's entry ids, in metaclip mode."""
    return _walk(automaton, data, offsets, valid, _SEPARATOR, _OWN_TOKEN)


def match_normalized(automaton: TokenAutomaton, data: np.ndarray, offsets: np.ndarray, valid: np.ndarray):
    """The same for captions already normalized (default mode): tokens are cut at single spaces only."""
    return _walk(automaton, data, offsets, valid, _SPACE, _NO_OWN_TOKEN)


def _walk(automaton: TokenAutomaton, data, offsets, valid, separator, own_token):
    return _match_tokens(data, offsets, valid, separator, own_token, automaton.token_slots_hash,
                           automaton.token_slots_id, automaton.token_offsets, automaton.token_bytes,
                           automaton.root_next, automaton.edge_keys, automaton.edge_next, automaton.fail,
                           automaton.output_start, automaton.output_ids, automaton.output_link)
