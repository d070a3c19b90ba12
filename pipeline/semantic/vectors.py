"""The embed stage's files read back: uid and image vector rows, float16 on disk, float32 in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def read_embedding_file(path: Path | str) -> tuple[list[str], np.ndarray]:
    """uids and image vectors (float32, one row each) of one DIR/embed/part-*.parquet file."""
    table = pq.read_table(path, columns=["uid", "image"])
    column = table.column("image").combine_chunks()
    dim = column.type.list_size
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return table.column("uid").to_pylist(), flat.reshape(len(table), dim).astype(np.float32)
