"""Stable ids and seeded hash draws.

Every random decision is a pure function of (seed, uid, entry_id) through a 64-bit mix (SplitMix64's
finalizer), so a selection does not depend on partitioning, executor count or row order.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

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


def uid_words(uids) -> tuple[np.ndarray, np.ndarray]:
    """Split 32-hex-digit uids into their high and low 64-bit halves."""
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
