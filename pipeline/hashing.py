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


def one_array(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """An Arrow column as one array, for code that reads its buffers: a chunked one of a single chunk is not
    copied."""
    if isinstance(array, pa.ChunkedArray):
        return array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    return array


def content_uids(urls: pa.Array | pa.ChunkedArray, captions: pa.Array | pa.ChunkedArray) -> pa.Array:
    """content_uid of each pair of two aligned Arrow binary (or string) arrays with no nulls, as Arrow strings:
    in C for the whole batch (native/metacurate_uids.pyx), or through hashlib where that is not installed."""
    urls, captions = one_array(urls), one_array(captions)
    if metacurate_uids is not None:
        return metacurate_uids.content_uids(urls, captions)
    return pa.array([content_uid(url, caption) for url, caption in
                     zip(urls.cast(pa.binary()).to_pylist(), captions.cast(pa.binary()).to_pylist())], pa.string())


def uid_words(uids: Sequence[str] | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Split 32-hex-digit uids into their high and low 64-bit halves. An Arrow string array of them is decoded
    from its buffer in one call (a balance task's whole batch: 0.26 us a row as one bytes.fromhex per uid)."""
    if isinstance(uids, (pa.Array, pa.ChunkedArray)):
        if not len(uids):
            return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
        uids = one_array(uids)
        offsets = np.frombuffer(uids.buffers()[1], np.int64 if pa.types.is_large_string(uids.type) else np.int32)[
            uids.offset: uids.offset + len(uids) + 1]
        if uids.null_count or not np.all(np.diff(offsets) == 32):
            raise ValueError("uids must be 32 hex digits each")
        digits = uids.buffers()[2].to_pybytes()[offsets[0]: offsets[-1]]
        try:
            raw = np.frombuffer(bytes.fromhex(digits.decode("ascii")), dtype=">u8")
        except ValueError as error:  # UnicodeDecodeError is one too
            raise ValueError(f"uids must be 32 hex digits each ({error})") from None
    else:
        raw = np.frombuffer(b"".join(bytes.fromhex(uid) for uid in uids), dtype=">u8")
    return raw[0::2].astype(np.uint64), raw[1::2].astype(np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def uid_states(seed: int, uid_hi: np.ndarray, uid_lo: np.ndarray) -> np.ndarray:
    """The draw's state after the seed and the uid, per uid: a sample's draws for all its entries share it,
    so it is mixed once per sample, not once per (sample, entry)."""
    seeded = _mix(np.array([seed & 0xFFFFFFFFFFFFFFFF], np.uint64) + _GOLDEN)
    return _mix(_mix(seeded ^ uid_hi) ^ uid_lo)


def entry_draws(states: np.ndarray, entry_ids: np.ndarray) -> np.ndarray:
    """One uniform [0, 1) draw per (uid state, entry_id), elementwise over aligned arrays."""
    state = _mix(states ^ np.asarray(entry_ids).astype(np.uint64))
    return (state >> _S11).astype(np.float64) * (1.0 / (1 << 53))


def uniform_draws(seed: int, uid_hi: np.ndarray, uid_lo: np.ndarray, entry_ids: np.ndarray) -> np.ndarray:
    """One uniform [0, 1) draw per (seed, uid, entry_id), elementwise over aligned arrays."""
    return entry_draws(uid_states(seed, uid_hi, uid_lo), entry_ids)


def uid_sample(uids, fraction: float, seed: int) -> np.ndarray:
    """A seeded draw of about `fraction` of the uids (a boolean mask): the same uids whatever the order or
    partitioning they come in."""
    if not len(uids):
        return np.zeros(0, dtype=bool)
    high, low = uid_words(uids)
    return uniform_draws(seed, high, low, np.full(len(uids), -1)) < fraction
