"""An Aho-Corasick automaton over words, in flat arrays that a compiled kernel walks and workers memory-map.

Why words: a key " e " occurs in a caption padded with spaces exactly when e's tokens (split on single
spaces, empty tokens kept) are a contiguous run of the caption's tokens split the same way. So a caption is
about ten token steps instead of fifty-odd byte steps, and the tables (one slot per distinct token, one per trie
edge) stay in cache far better than a byte trie of 500k keys (measured: one cache miss per byte, 41-48 ns).

Each table keeps what one step reads in one 16-byte record, so that a step costs one cache line, not one per
field:
- tokens: an open-addressing table indexed by the token's 64-bit FNV-1a hash; a slot holds the token's bytes
  packed into a uint64 when it has at most 8 of them (compared exactly), else its hash (then confirmed against
  `token_bytes`), and its id and length. Results are exact, never probabilistic.
- transitions: the root's as a dense row by token id; every other state's in a second table keyed by
  (state << 32 | token).
- states: each state's fail link, the range of entry ids ending at it in `output_ids`, and the nearest state
  down its fail chain that ends some (so a step emits without walking fail links that end nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
PACKED_BYTES = 8  # tokens this long or shorter are stored, and compared, as one uint64
EMPTY_EDGE = (1 << 64) - 1
_MASK64 = (1 << 64) - 1
FORMAT_VERSION = 2  # bump when the tables' layout or meaning changes: cached folders of another version are rebuilt
# Columns of TokenAutomaton.states
FAIL, OUTPUT_START, OUTPUT_END, OUTPUT_LINK = range(4)


def token_hash(token: bytes) -> int:
    """64-bit FNV-1a, the kernel's hash (pipeline.text.token_kernel) written in Python for the build."""
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
    """Fibonacci hashing of a (state << 32 | token) key, as the kernel does."""
    return ((key * 0x9E3779B97F4A7C15) & _MASK64) >> 32 & mask


@dataclass(frozen=True)
class TokenAutomaton:
    token_slots: np.ndarray  # uint64[size, 2]: token_key, (id + 1) << 32 | length; 0 in column 1: an empty slot
    token_offsets: np.ndarray  # int64[tokens + 1]
    token_bytes: np.ndarray  # uint8[...]: every token's UTF-8 bytes, end to end
    root_next: np.ndarray  # int32[tokens]: the state after the root on each token (0: stay at the root)
    edges: np.ndarray  # uint64[size, 2]: state << 32 | token, next state; EMPTY_EDGE in column 0: an empty slot
    states: np.ndarray  # int32[states, 4]: FAIL, OUTPUT_START, OUTPUT_END, OUTPUT_LINK
    output_ids: np.ndarray  # int32[...]

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
        root_next, edges = _transition_tables(children, len(token_ids))
        states, output_ids = _state_records(children, ends)
        return cls(*_token_table(list(token_ids)), root_next, edges, states, output_ids)


def _state_records(children: list[dict[int, int]], ends: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Aho-Corasick's failure links (breadth first), each state's output range and its output link."""
    states = np.zeros((len(children), 4), np.int32)
    states[1:, OUTPUT_START] = np.cumsum([len(ids) for ids in ends])[:-1]
    states[:, OUTPUT_END] = states[:, OUTPUT_START] + [len(ids) for ids in ends]
    fail, output_link = states[:, FAIL], states[:, OUTPUT_LINK]
    queue = list(children[0].values())  # the root's children fail to the root
    for state in queue:  # grows while iterated: breadth-first order
        for token, child in children[state].items():
            suffix = fail[state]
            while suffix and token not in children[suffix]:
                suffix = fail[suffix]
            target = children[suffix].get(token, 0)
            fail[child] = target
            output_link[child] = target if ends[target] else output_link[target]
            queue.append(child)
    return states, np.array([entry for ids in ends for entry in ids], np.int32)


def _token_table(tokens: list[bytes]) -> tuple[np.ndarray, ...]:
    size = _table_size(len(tokens))
    slots = np.zeros((size, 2), np.uint64)
    for token_id, token in enumerate(tokens):
        slot = token_hash(token) & (size - 1)
        while slots[slot, 1]:
            slot = (slot + 1) & (size - 1)
        slots[slot] = token_key(token), (token_id + 1) << 32 | len(token)
    offsets = np.zeros(len(tokens) + 1, np.int64)
    offsets[1:] = np.cumsum([len(token) for token in tokens])
    data = np.frombuffer(b"".join(tokens), np.uint8).copy()
    return slots, offsets, data


def _transition_tables(children: list[dict[int, int]], tokens: int) -> tuple[np.ndarray, np.ndarray]:
    root_next = np.zeros(tokens, np.int32)
    for token, child in children[0].items():
        root_next[token] = child
    pairs = [(state << 32 | token, child) for state in range(1, len(children))
             for token, child in children[state].items()]
    size = _table_size(len(pairs))
    edges = np.zeros((size, 2), np.uint64)
    edges[:, 0] = EMPTY_EDGE
    for key, child in pairs:
        slot = transition_slot(key, size - 1)
        while edges[slot, 0] != EMPTY_EDGE:
            slot = (slot + 1) & (size - 1)
        edges[slot] = key, child
    return root_next, edges


def keys_fingerprint(keys: Sequence[Sequence[bytes]]) -> str:
    """Names a cached automaton: the keys' tokens in order, and the tables' format."""
    digest = hashlib.sha256(f"token-automaton v{FORMAT_VERSION}\n".encode())
    for key in keys:
        digest.update(b"\x00".join(key) + b"\x01")
    return digest.hexdigest()[:32]


CACHE_ENV = "METACURATE_CACHE"


def cache_root() -> Path:
    """$METACURATE_CACHE, else metacurate/ under the user's cache folder ($XDG_CACHE_HOME or ~/.cache)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "metacurate"


def automaton_folder(keys: Sequence[Sequence[bytes]], root: Path | None = None) -> Path:
    """The cache folder of the automaton of `keys`, built and saved there first when missing: one build per
    machine and vocabulary, and one copy in memory for all the workers that map it."""
    folder = (root or cache_root()) / "automata" / keys_fingerprint(keys)
    if not (folder / "format.json").exists():
        TokenAutomaton.build(keys).save(folder)
    return folder


def cached_automaton(keys: Sequence[Sequence[bytes]], root: Path | None = None) -> TokenAutomaton:
    return TokenAutomaton.load(automaton_folder(keys, root))
