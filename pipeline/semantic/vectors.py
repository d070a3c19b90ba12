"""The embed stage's files read back: uid and vector rows, float16 on disk, float32 in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def read_embedding_columns(path: Path | str, columns: tuple[str, ...]) -> tuple[list[str], list[np.ndarray]]:
    """uids and the named vector columns ("image", "text"; float32, one row each) of one DIR/embed file."""
    table = pq.read_table(path, columns=["uid", *columns])
    matrices = []
    for name in columns:
        column = table.column(name).combine_chunks()
        flat = column.flatten().to_numpy(zero_copy_only=False)
        matrices.append(flat.reshape(len(table), column.type.list_size).astype(np.float32))
    return table.column("uid").to_pylist(), matrices

