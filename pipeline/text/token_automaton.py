"""An Aho-Corasick automaton over words, in flat arrays that a compiled kernel walks and workers memory-map.

Why words: a key " e " occurs in a caption padded with spaces exactly when e's tokens (split on single
spaces, empty tokens kept) are a contiguous run of the caption's tokens split the same way. So a caption is
about ten token steps instead of fifty-odd byte steps, and the tables (one slot per distinct token, one per trie
edge) stay in cache far better than a byte trie of 500k keys (measured: one cache miss per byte, 41-48 ns).

A step's cost is its cache misses, so what a step needs is kept in the 16-byte record it reads anyway:
- tokens: an open-addressing table indexed by the token's 64-bit FNV-1a hash. A slot holds the token's bytes
  packed into a uint64 when it has at most 8 of them (compared exactly), else its hash (then confirmed against
  `token_bytes`), and one word: its length, whether it follows another token in any key, and the root's step
  on it. A token is known by its slot number. Results are exact, never probabilistic.
- transitions of every other state: a second table keyed by (state << 32 | token slot), looked up only when
  the walk is past the root and the token follows another in some key.
- a step record is where the walk goes on from and what it emits there. It goes on from the target state
  itself when that has transitions, else from the first state down its fail chain that has some (the root,
  for most one-word entries), since a state with none would fail at once; it emits the target's whole output
  set (its own entries and those down its fail chain): nothing, one entry id, or a range of `emit_ids`. So the
  common step, a known word from the root, reads one slot and nothing else.
- `fail_resume`: where a state goes when the token has no transition from it (its fail target, resumed the
  same way); read only on that path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
PACKED_BYTES = 8  # tokens this long or shorter are stored, and compared, as one uint64
EMPTY_EDGE = (1 << 64) - 1
_MASK64 = (1 << 64) - 1
FORMAT_VERSION = 6  # bump when the tables' layout or meaning changes: cached folders of another version are rebuilt
# A slot's word (column 1 of token_slots) and a step record (column 1 of edges) share one layout:
#   bits 0-3: the token's length + 1 when at most PACKED_BYTES, else LONG (0 in a step record; a slot's word is
#             never 0, so 0 marks an empty slot); bit 4: FOLLOWS (the token is not the first of some key);
#   bit 5: FAILS_TO_ROOT (the state to go on from fails straight to the root);
#   bits 6-33: what to emit (0: nothing, below EMIT_RANGE: entry id emit - 1, else range emit - EMIT_RANGE of
#             emit_offsets); bits 34-63: the state to go on from.
LENGTH_BITS, LONG = 0xF, 0xF
FOLLOWS, FAILS_TO_ROOT = 1 << 4, 1 << 5
EMIT_SHIFT, EMIT_MASK, EMIT_RANGE = 6, (1 << 28) - 1, 1 << 27
STATE_SHIFT = 34
# Two blocked Bloom filters, three bits of one uint64 per key, small enough to stay in L2, so that most lookups of
# what does not exist cost no cache miss: one of the transitions' keys (16 bits each, 256 KB for 500k entries),
# one of the tokens' hashes (8 bits each, 512 KB: a third of real captions' tokens are in no entry).
FILTER_BITS_PER_EDGE, FILTER_BITS_PER_TOKEN = 16, 8
FILTER_MULTIPLIER = 0xD6E8FEB86659FD93
TRANSITION_MULTIPLIER = 0x9E3779B97F4A7C15  # Fibonacci hashing of a transition's key


def token_hash(token: bytes) -> int:
    """64-bit FNV-1a, the kernel's hash (native/metacurate_walk.pyx) written in Python for the build."""
    value = FNV_OFFSET
    for byte in token:
        value = ((value ^ byte) * FNV_PRIME) & _MASK64
    return value


def token_key(token: bytes) -> int:
    """What a token's slot compares: its bytes packed little-endian when they fit, else its hash."""
    return int.from_bytes(token, "little") if len(token) <= PACKED_BYTES else token_hash(token)


def _table_size(items: int) -> int:
    """A power of two at least twice the items: short probe runs, and a mask instead of a modulo."""
    return 1 << max(4, (2 * items - 1).bit_length())


def transition_slot(key: int, mask: int) -> int:
    """The first slot probed for a (state << 32 | token slot) key, as the kernel's step_from computes it."""
    return ((key * TRANSITION_MULTIPLIER) & _MASK64) >> 32 & mask


def filter_position(key: int, words: int) -> tuple[int, int]:
    """A filter's word and bit mask of a key, as the kernel's may_contain computes them."""
    mixed = (key * FILTER_MULTIPLIER) & _MASK64
    return mixed >> 40 & (words - 1), 1 << (mixed & 63) | 1 << (mixed >> 6 & 63) | 1 << (mixed >> 12 & 63)


@dataclass(frozen=True)
class TokenAutomaton:
    token_filter: np.ndarray  # uint64[words]: the tokens' FNV-1a hashes
    token_slots: np.ndarray  # uint64[size, 2]: token_key, the slot's word (0: an empty slot)
    long_tokens: np.ndarray  # uint32[size, 2]: where a slot's token longer than PACKED_BYTES is in token_bytes
    token_bytes: np.ndarray  # uint8[...]
    edges: np.ndarray  # uint64[size, 2]: state << 32 | token slot, step record; EMPTY_EDGE in column 0: empty
    edge_filter: np.ndarray  # uint64[words]
    fail_resume: np.ndarray  # int32[states]
    emit_offsets: np.ndarray  # int64[ranges + 1]
    emit_ids: np.ndarray  # int32[...]

    def save(self, folder: Path) -> None:
        """Write the tables into `folder` (which must not exist yet) atomically: a temporary folder renamed."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            for field in fields(self):
                np.save(staging / f"{field.name}.npy", getattr(self, field.name))
            (staging / "format.json").write_text(json.dumps({"version": FORMAT_VERSION}))
            os.replace(staging, folder)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not (folder / "format.json").exists():  # another worker's rename won the race: use theirs
                raise

    @classmethod
    def load(cls, folder: Path) -> TokenAutomaton:
        """Map the tables read-only: every process that loads the same folder shares the same pages."""
        return cls(**{field.name: np.load(Path(folder) / f"{field.name}.npy", mmap_mode="r")
                      for field in fields(cls)})

    @classmethod
    def build(cls, keys: Sequence[Sequence[bytes]]) -> TokenAutomaton:
        """The automaton of `keys`, each a key's tokens; key i ends with entry id i (keys may repeat)."""
        if len(keys) >= EMIT_RANGE - 1:
            raise ValueError(f"{len(keys):,} keys: the step records hold entry ids below {EMIT_RANGE - 1:,}")
        token_ids: dict[bytes, int] = {}
        children: list[dict[int, int]] = [{}]
        ends: list[list[int]] = [[]]
        for entry_id, key in enumerate(keys):
            state = 0
            for token in key:
                token_id = token_ids.setdefault(token, len(token_ids))
                nxt = children[state].get(token_id)
                if nxt is None:
                    nxt = children[state][token_id] = len(children)
                    children.append({})
                    ends.append([])
                state = nxt
            ends[state].append(entry_id)
        steps, fail_resume, emit_offsets, emit_ids = _step_records(children, ends)
        tokens = list(token_ids)
        followers = {token for state in children[1:] for token in state}
        token_slots, long_tokens, token_bytes, slot_of = _token_table(
            tokens, [steps[children[0][token]] if token in children[0] else 0 for token in range(len(tokens))],
            followers)
        return cls(_filter([token_hash(token) for token in tokens], FILTER_BITS_PER_TOKEN), token_slots,
                   long_tokens, token_bytes, *_edge_tables(children, steps, slot_of), fail_resume,
                   emit_offsets, emit_ids)


def _step_records(children: list[dict[int, int]], ends: list[list[int]]) -> tuple:
    """Aho-Corasick's failure links (breadth first), then each state's step record and fail_resume, and the
    output sets of more than one entry as ranges of emit_ids."""
    if len(children) >= 1 << (64 - STATE_SHIFT):
        raise ValueError(f"{len(children):,} states: the step records hold state numbers below 2**30")
    fail = [0] * len(children)
    order = list(children[0].values())  # the root's children fail to the root
    for state in order:  # grows while iterated: breadth-first order
        for token, child in children[state].items():
            suffix = fail[state]
            while suffix and token not in children[suffix]:
                suffix = fail[suffix]
            fail[child] = children[suffix].get(token, 0)
            order.append(child)
    resume, outputs, steps = [0] * len(children), [()] * len(children), [0] * len(children)
    emit_offsets, emit_ids = [0], []
    for state in order:  # a state's fail target comes before it
        resume[state] = state if children[state] else resume[fail[state]]
        outputs[state] = (*ends[state], *outputs[fail[state]])
        if not outputs[state]:
            emit = 0
        elif len(outputs[state]) == 1:
            emit = outputs[state][0] + 1
        else:
            emit = EMIT_RANGE + len(emit_offsets) - 1
            emit_ids.extend(outputs[state])
            emit_offsets.append(len(emit_ids))
        if emit > EMIT_MASK:
            raise ValueError("too many multi-entry output sets for the step records")
        fails_to_root = FAILS_TO_ROOT if resume[fail[resume[state]]] == 0 else 0
        steps[state] = resume[state] << STATE_SHIFT | emit << EMIT_SHIFT | fails_to_root
    fail_resume = np.array([resume[target] for target in fail], np.int32)
    return steps, fail_resume, np.array(emit_offsets, np.int64), np.array(emit_ids, np.int32)


def _token_table(tokens: list[bytes], root_steps: list[int], followers: set[int]) -> tuple:
    """The token slots, the long tokens' bytes, and each token id's slot number."""
    size = _table_size(len(tokens))
    slots = np.zeros((size, 2), np.uint64)
    long_tokens = np.zeros((size, 2), np.uint32)
    token_bytes, written, slot_of = bytearray(), 0, []
    for token_id, token in enumerate(tokens):
        slot = token_hash(token) & (size - 1)
        while slots[slot, 1]:
            slot = (slot + 1) & (size - 1)
        slot_of.append(slot)
        length = len(token) + 1 if len(token) <= PACKED_BYTES else LONG
        slots[slot] = token_key(token), root_steps[token_id] | (FOLLOWS if token_id in followers else 0) | length
        if length == LONG:
            long_tokens[slot] = written, written + len(token)
            token_bytes += token
            written += len(token)
    if written >= 1 << 32:
        raise ValueError("the long tokens' bytes exceed 4 GiB")
    return slots, long_tokens, np.frombuffer(bytes(token_bytes), np.uint8).copy(), slot_of


def _edge_tables(children: list[dict[int, int]], steps: list[int], slot_of: list[int]) -> tuple[np.ndarray, ...]:
    """The transitions past the root, and their filter."""
    pairs = [(state << 32 | slot_of[token], steps[child]) for state in range(1, len(children))
             for token, child in children[state].items()]
    size = _table_size(len(pairs))
    edges = np.zeros((size, 2), np.uint64)
    edges[:, 0] = EMPTY_EDGE
    for key, step in pairs:
        slot = transition_slot(key, size - 1)
        while edges[slot, 0] != EMPTY_EDGE:
            slot = (slot + 1) & (size - 1)
        edges[slot] = key, step
    return edges, _filter([key for key, _ in pairs], FILTER_BITS_PER_EDGE)


def _filter(keys: list[int], bits_per_key: int) -> np.ndarray:
    words = 1 << max(0, (len(keys) * bits_per_key // 64 - 1).bit_length())
    table = [0] * words
    for key in keys:
        word, bits = filter_position(key, words)
        table[word] |= bits
    return np.array(table, np.uint64)


CACHE_ENV = "METACURATE_CACHE"


def cache_root() -> Path:
    """$METACURATE_CACHE, else metacurate/ under the user's cache folder ($XDG_CACHE_HOME or ~/.cache)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "metacurate"


def automaton_folder(name: str, make_keys: Callable[[], Sequence[Sequence[bytes]]], root: Path | None = None) -> Path:
    """The cache folder `name` (with this layout's version) of an automaton, built from make_keys() and saved
    there first when missing: one build per machine and vocabulary, and one copy in memory for all the workers
    that map it. The name must change whenever the keys would."""
    folder = (root or cache_root()) / "automata" / f"{name}-v{FORMAT_VERSION}"
    if not (folder / "format.json").exists():
        TokenAutomaton.build(make_keys()).save(folder)
    return folder
