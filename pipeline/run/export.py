"""A run's final selection in DataComp's subset format, for its resharder and its 38-task evaluation.

DataComp names a subset by a .npy file: a sorted numpy structured array of two uint64 per sample, the high and
low halves of its 128-bit hex uid (dtype "u8,u8"), which its tools binary-search. A pool read from DataComp's
metadata parquet keeps DataComp's uids (ingest keeps a pool's own 32-hex-digit uids), so the file selects the
same samples there.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow.parquet as pq

from pipeline.errors import UserInputError
from pipeline.hashing import uid_words

SUBSET_DTYPE = np.dtype("u8,u8")


def uid_array(uids: Sequence[str]) -> np.ndarray:
    """The uids as DataComp's sorted structured array (ValueError on a uid that is not 32 hex digits)."""
    high, low = uid_words(list(uids))
    array = np.empty(len(high), SUBSET_DTYPE)
    array["f0"], array["f1"] = high, low
    array.sort()
    return array


def hex_uids(array: np.ndarray) -> list[str]:
    """The 32-hex-digit uids of a subset array, in its order."""
    return [f"{int(high):016x}{int(low):016x}" for high, low in zip(array["f0"], array["f1"])]


def _checked_uids(index: Path) -> list[str]:
    """The shard index's uids; a malformed or repeated one is an error naming its row."""
    uids = pq.read_table(index, columns=["uid"]).column("uid").to_pylist()
    seen = set()
    for row, uid in enumerate(uids):
        if uid is None or len(uid) != 32 or not all(digit in "0123456789abcdefABCDEF" for digit in uid):
            raise UserInputError(f"{index}, row {row}: uid {uid!r} is not 32 hex digits, so not a DataComp uid")
        if uid.lower() in seen:
            raise UserInputError(f"{index}, row {row}: uid {uid} appears twice")
        seen.add(uid.lower())
    return uids


def export_uids(index: Path, out: Path) -> int:
    """Write the shards' uids (their index.parquet) to `out` as a DataComp subset; returns how many. The file
    appears whole or not at all."""
    if not Path(index).is_file():
        raise UserInputError(f"{index}: no shard index; run jobs/write_shards.py first")
    array = uid_array(_checked_uids(Path(index)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(partial, "wb") as handle:  # a file object: np.save would add .npy to a name
            np.save(handle, array)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return len(array)
