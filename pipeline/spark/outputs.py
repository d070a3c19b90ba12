"""Write a stage's rows and its rejects from one DataFrame, and count both for the manifest."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.ingest import REJECT_SCHEMA
from pipeline.rundir import REJECTS


def reject_columns(df: DataFrame) -> list:
    """The common rejects schema; columns a stage does not have are null."""
    present = set(df.columns)
    return [
        (F.col(field.name) if field.name in present else F.lit(None)).cast(_spark_type(field)).alias(field.name)
        for field in REJECT_SCHEMA
    ]


def _spark_type(field) -> str:
    return "bigint" if str(field.type) == "int64" else "string"


def write_split(df: DataFrame, out_dir: Path, data_columns: list[str],
                cache: bool = True) -> tuple[int, dict[str, int]]:
    """Rows whose `reason` is null go to out_dir, the others to out_dir/_rejects.

    The input is cached (unless the caller cached what it derives from) so that counting and both
    writes compute it once.
    """
    if cache:
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {row["reason"]: row["count"] for row in df.groupBy("reason").count().collect()}
        kept = counts.pop(None, 0)
        df.filter(F.col("reason").isNull()).select(*data_columns).write.mode("overwrite").parquet(str(out_dir))
        (df.filter(F.col("reason").isNotNull()).select(*reject_columns(df))
           .write.mode("overwrite").parquet(str(Path(out_dir) / REJECTS)))
    finally:
        if cache:
            df.unpersist()
    return kept, counts


_DDL_TYPES = {pa.string(): "string", pa.int64(): "bigint", pa.int32(): "int", pa.float64(): "double",
              pa.bool_(): "boolean"}


def _ddl_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_list(arrow_type):
        return f"array<{_ddl_type(arrow_type.value_type)}>"
    return _DDL_TYPES[arrow_type]


def ddl(schema: pa.Schema) -> str:
    """A pyarrow schema as the Spark DDL string that mapInArrow expects."""
    return ", ".join(f"{field.name} {_ddl_type(field.type)}" for field in schema)
