"""An Aho-Corasick automaton over words, in flat arrays that a compiled kernel walks and workers memory-map.

Why words: a key " e " occurs in a caption padded with spaces exactly when e's tokens (split on single
spaces, empty tokens kept) are a contiguous run of the caption's tokens split the same way. So a caption is
about ten token steps instead of fifty-odd byte steps, and the tables (one per distinct token, one per trie
edge) stay in cache far better than a byte trie of 500k keys (measured: one cache miss per byte, 41-48 ns).

Tables (all numpy, saved as .npy files so that every worker maps the same pages):
- tokens: an open-addressing hash table from a token's 64-bit FNV-1a hash to its id, with the token bytes
  (`token_offsets`, `token_bytes`) to confirm a hit, so that results are exact, not probabilistic.
- transitions: the root's as a dense row by token id; every other state's in a second hash table keyed by
  (state << 32 | token).
- fail links, and the entry ids ending at each state (CSR) with a link to the next state down the fail chain
  that ends some (`output_link`), so a step emits without walking fail links that end nothing.
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
_MASK64 = (1 << 64) - 1
FORMAT_VERSION = 1  # bump when the tables' layout or meaning changes: cached folders of another version are rebuilt


def token_hash(token: bytes) -> int:
    """64-bit FNV-1a, the kernel's hash (pipeline.text.token_kernel.fnv1a) written in Python for the build."""
    value = FNV_OFFSET
    for byte in token:
        value = ((value ^ byte) * FNV_PRIME) & _MASK64
    return value


def _table_size(items: int) -> int:
    """A power of two at least twice the items: short probe runs, and a mask instead of a modulo."""
    return 1 << max(4, (2 * items - 1).bit_length())


def transition_slot(key: int, mask: int) -> int:
    """Fibonacci hashing of a (state << 32 | token) key, as the kernel does."""
    return ((key * 0x9E3779B97F4A7C15) & _MASK64) >> 32 & mask


@dataclass(frozen=True)
class TokenAutomaton:
    token_slots_hash: np.ndarray  # uint64[size]: the hash of the token in each slot
    token_slots_id: np.ndarray  # int32[size]: its token id, -1 for an empty slot
    token_offsets: np.ndarray  # int64[tokens + 1]
    token_bytes: np.ndarray  # uint8[...]: every token's UTF-8 bytes, end to end
    root_next: np.ndarray  # int32[tokens]: the state after the root on each token (0: stay at the root)
    edge_keys: np.ndarray  # uint64[size]: state << 32 | token of each slot; 2**64 - 1 for an empty slot
    edge_next: np.ndarray  # int32[size]
    fail: np.ndarray  # int32[states]
    output_start: np.ndarray  # int32[states + 1]: entry ids ending at state s are output_ids[start[s]:start[s+1]]
    output_ids: np.ndarray  # int32[...]
    output_link: np.ndarray  # int32[states]: the nearest state down the fail chain that ends an entry, or 0

    @property
    def states(self) -> int:
        return len(self.fail)

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
        fail, output_link = _failure_links(children, ends)
        return cls(*_token_table(list(token_ids)), *_transition_tables(children, len(token_ids)),
                   fail, *_outputs(ends), output_link)


def _failure_links(children: list[dict[int, int]], ends: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Aho-Corasick's failure links, breadth first, and each state's nearest proper suffix state ending a key."""
    fail = np.zeros(len(children), np.int32)
    output_link = np.zeros(len(children), np.int32)
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
    return fail, output_link


def _token_table(tokens: list[bytes]) -> tuple[np.ndarray, ...]:
    size = _table_size(len(tokens))
    slots_hash = np.zeros(size, np.uint64)
    slots_id = np.full(size, -1, np.int32)
    for token_id, token in enumerate(tokens):
        value = token_hash(token)
        slot = value & (size - 1)
        while slots_id[slot] >= 0:
            slot = (slot + 1) & (size - 1)
        slots_hash[slot], slots_id[slot] = value, token_id
    offsets = np.zeros(len(tokens) + 1, np.int64)
    offsets[1:] = np.cumsum([len(token) for token in tokens])
    data = np.frombuffer(b"".join(tokens), np.uint8).copy()
    return slots_hash, slots_id, offsets, data


def _transition_tables(children: list[dict[int, int]], tokens: int) -> tuple[np.ndarray, ...]:
    root_next = np.zeros(tokens, np.int32)
    for token, child in children[0].items():
        root_next[token] = child
    edges = [(state << 32 | token, child) for state in range(1, len(children))
             for token, child in children[state].items()]
    size = _table_size(len(edges))
    keys = np.full(size, np.iinfo(np.uint64).max, np.uint64)
    targets = np.full(size, -1, np.int32)
    for key, child in edges:
        slot = transition_slot(key, size - 1)
        while targets[slot] >= 0:
            slot = (slot + 1) & (size - 1)
        keys[slot], targets[slot] = key, child
    return root_next, keys, targets


def _outputs(ends: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    start = np.zeros(len(ends) + 1, np.int32)
    start[1:] = np.cumsum([len(ids) for ids in ends])
    return start, np.array([entry for ids in ends for entry in ids], np.int32)


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


def cached_automaton(keys: Sequence[Sequence[bytes]], root: Path | None = None) -> TokenAutomaton:
    """The automaton of `keys` from the cache, built and saved there first when missing: one build per machine
    and vocabulary, and one copy in memory for all the workers that map it."""
    folder = (root or cache_root()) / "automata" / keys_fingerprint(keys)
    if not (folder / "format.json").exists():
        TokenAutomaton.build(keys).save(folder)
    return TokenAutomaton.load(folder)
