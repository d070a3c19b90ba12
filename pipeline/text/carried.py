"""The optional columns a pool may have that ride along with its rows through ingest, match and balance.

A module of its own so that a match or balance task, which needs only these, does not import ingest's
dependencies (polars: 25 MiB of each Spark worker's memory)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CARRIED_FIELDS = (pa.field("language", pa.string()),)


def carried_fields(present: list[str]) -> list[pa.Field]:
    """The carried columns among `present` (a stage's input columns)."""
    return [field for field in CARRIED_FIELDS if field.name in present]


def with_carried(schema: pa.Schema, present: list[str]) -> pa.Schema:
    return pa.schema([*schema, *carried_fields(present)])


def stage_columns(folder: Path) -> list[str]:
    """The columns of a stage's Parquet parts (every part has the stage's schema), read from one part's footer:
    pyarrow.dataset would do it too, at 41 MiB of imports in every Spark worker that unpickles the caller."""
    return pq.read_schema(min(Path(folder).glob("part-*.parquet"))).names
