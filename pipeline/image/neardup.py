"""Near-exact duplicates by perceptual hash: candidate pairs by hash bands, groups by single linkage.

Two hashes within `max_distance` bits become candidates when one of BANDS 16-bit bands is equal: always
so up to BANDS - 1 differing bits (pigeonhole), and in practice for resized or re-encoded copies, whose
few changed bits rarely touch every band. Every candidate pair is then checked exactly.

In each group one sample is kept by a stated rule: the largest source image (pixels), then the
smallest uid, so the choice never depends on the order of rows.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

# Hashes at most this many bits apart are near-duplicates: DCT pHash of a resized or recompressed copy.
MAX_PHASH_DISTANCE = 6
BANDS = 4
BAND_BITS = 64 // BANDS
_BAND_MASK = (1 << BAND_BITS) - 1


def band_values(phash: int) -> list[int]:
    """The hash cut into BANDS integers; band i of two hashes is equal when those 16 bits are."""
    unsigned = phash & 0xFFFFFFFFFFFFFFFF
    return [(unsigned >> (BAND_BITS * band)) & _BAND_MASK for band in range(BANDS)]


def keep_order(pixels: int, uid: str) -> tuple[int, str]:
    """Sort key of the keep rule: the first of a group by this key is kept."""
    return (-pixels, uid)


def duplicate_groups(pairs: Iterable[tuple]) -> list[set]:
    """Connected groups of the uids linked by pairs (single linkage), via union-find."""
    parent: dict = {}

    def root(uid):
        parent.setdefault(uid, uid)
        while parent[uid] != uid:
            parent[uid] = parent[parent[uid]]
            uid = parent[uid]
        return uid

    for left, right in pairs:
        left_root, right_root = root(left), root(right)
        if left_root != right_root:
            parent[max(left_root, right_root)] = min(left_root, right_root)
    groups: dict[str, set[str]] = {}
    for uid in parent:
        groups.setdefault(root(uid), set()).add(uid)
    return list(groups.values())


def losers(groups: list[set[str]], pixels: dict[str, int]) -> dict[str, str]:
    """uid -> the uid kept in its place, for every sample of a group but the one the keep rule picks."""
    replaced: dict[str, str] = {}
    for group in groups:
        winner, *others = sorted(group, key=lambda uid: keep_order(pixels[uid], uid))
        replaced.update({uid: winner for uid in others})
    return replaced


def removed_by_distance(phashes: Sequence[int], distances: Sequence[int]) -> dict[int, int]:
    """Images a near-duplicate pass would remove at each max Hamming distance (all pairs compared: for
    tuning on a sample of a run, not for the run itself, which the banded join in Spark handles)."""
    hashes = np.asarray(phashes, dtype=np.int64).view(np.uint64)
    bits = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    upper = np.triu(np.ones(bits.shape, dtype=bool), k=1)
    removed = {}
    for distance in distances:
        left, right = np.nonzero(upper & (bits <= distance))
        groups = duplicate_groups(zip(left.tolist(), right.tolist()))
        removed[distance] = sum(len(group) - 1 for group in groups)
    return removed
