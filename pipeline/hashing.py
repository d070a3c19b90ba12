"""Stable ids and seeded hash draws.

Every random decision is a pure function of (seed, uid, entry_id) through a 64-bit mix (SplitMix64's
finalizer), so a selection does not depend on partitioning, executor count or row order.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np
import pyarrow as pa

try:
    import metacurate_uids
except ImportError:  # not built here (a worker with only the shipped zip): hashlib, one pair at a time
    metacurate_uids = None

_HEX_UID = re.compile(r"[0-9a-fA-F]{32}")
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))


def content_uid(url: bytes, caption: bytes) -> str:
    """128-bit hex id of a (url, caption) pair: equal pairs get equal ids on every run."""
    return hashlib.blake2b(url + b"\x1f" + caption, digest_size=16).hexdigest()


def pool_uid(value: str) -> str:
    """The pool's own id as a 128-bit hex uid: kept if it already is one, hashed otherwise."""
    if _HEX_UID.fullmatch(value):
        return value.lower()
    return hashlib.blake2b(b"pool-id\x1f" + value.encode("utf-8"), digest_size=16).hexdigest()


def _one_chunk(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        return array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    return array


def content_uids(urls: pa.Array | pa.ChunkedArray, captions: pa.Array | pa.ChunkedArray) -> pa.Array:
    """content_uid of each pair of two aligned Arrow binary (or string) arrays with no nulls, as Arrow strings:
    in C for the whole batch (native/metacurate_uids.pyx), or through hashlib where that is not installed."""
    urls, captions = _one_chunk(urls), _one_chunk(captions)
    if metacurate_uids is not None:
        return metacurate_uids.content_uids(urls, captions)
    return pa.array([content_uid(url, caption) for url, caption in
                     zip(urls.cast(pa.binary()).to_pylist(), captions.cast(pa.binary()).to_pylist())], pa.string())


_NIBBLES = np.full(256, 255, np.uint8)  # a hex digit's value by its byte; 255: not a hex digit
for _value, _digit in enumerate(b"0123456789abcdef"):
    _NIBBLES[_digit] = _NIBBLES[bytes([_digit]).upper()[0]] = _value
_NIBBLE_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)


def uid_words(uids: Sequence[str] | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Split 32-hex-digit uids into their high and low 64-bit halves. An Arrow string array of them is read
    from its buffer with numpy (a balance task's whole batch: 0.26 us a row as Python bytes.fromhex)."""
    if isinstance(uids, (pa.Array, pa.ChunkedArray)):
        if not len(uids):
            return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
        uids = _one_chunk(uids)
        wide = pa.types.is_large_string(uids.type)
        offsets = np.frombuffer(uids.buffers()[1], np.int64 if wide else np.int32)[
            uids.offset: uids.offset + len(uids) + 1]
        if uids.null_count or not np.all(np.diff(offsets) == 32):
            raise ValueError("uids must be 32 hex digits each")
        digits = np.frombuffer(uids.buffers()[2], np.uint8)[offsets[0]: offsets[-1]]
        nibbles = _NIBBLES[digits].reshape(len(uids), 32)
        if (nibbles == 255).any():
            raise ValueError("uids must be 32 hex digits each")
        words = (nibbles.astype(np.uint64).reshape(len(uids), 2, 16) << _NIBBLE_SHIFTS).sum(axis=2, dtype=np.uint64)
        return words[:, 0].copy(), words[:, 1].copy()
    raw = np.frombuffer(b"".join(bytes.fromhex(uid) for uid in uids), dtype=">u8")
    return raw[0::2].astype(np.uint64), raw[1::2].astype(np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def uniform_draws(seed: int, uid_hi: np.ndarray, uid_lo: np.ndarray, entry_ids: np.ndarray) -> np.ndarray:
    """One uniform [0, 1) draw per (seed, uid, entry_id), elementwise over aligned arrays."""
    state = _mix(np.full(len(entry_ids), np.uint64(seed & 0xFFFFFFFFFFFFFFFF)) + _GOLDEN)
    state = _mix(state ^ uid_hi)
    state = _mix(state ^ uid_lo)
    state = _mix(state ^ np.asarray(entry_ids).astype(np.uint64))
    return (state >> _S11).astype(np.float64) * (1.0 / (1 << 53))


def uid_sample(uids, fraction: float, seed: int) -> np.ndarray:
    """A seeded draw of about `fraction` of the uids (a boolean mask): the same uids whatever the order or
    partitioning they come in."""
    if not len(uids):
        return np.zeros(0, dtype=bool)
    high, low = uid_words(uids)
    return uniform_draws(seed, high, low, np.full(len(uids), -1)) < fraction
