"""The embed stage's vectors as Spark work: one task per Parquet file, read with pyarrow.

The files hold float16 vectors, which Spark cannot type, so tasks read them themselves and pass unit vectors
on as float32 bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.errors import UserInputError
from pipeline.hashing import uid_sample
from pipeline.run.stages import STAGES
from pipeline.semantic.semdedup import normalized
from pipeline.semantic.vectors import read_embedding_columns
from pipeline.spark.outputs import ddl


def embedding_files(spark: SparkSession, run_dir: Path) -> DataFrame:
    """The embed stage's Parquet files (a `path` column), spread over the cluster's cores."""
    paths = sorted(str(path) for path in STAGES["embed"].path(run_dir).glob("part-*.parquet"))
    return spark.createDataFrame([(path,) for path in paths], "path string").repartition(
        max(1, min(len(paths), spark.sparkContext.defaultParallelism)))


def as_bytes(vectors: np.ndarray) -> pa.Array:
    return pa.array([row.astype(np.float32).tobytes() for row in vectors], pa.binary())


def per_embedding_file(work, columns: tuple[str, ...] = ("image",)):
    """A mapInArrow function: read each listed embedding file and yield work(uids, *unit vectors) for it, one
    matrix per named column (the image vectors unless told)."""
    def run(batches):
        for batch in batches:
            for path in batch.column("path").to_pylist():
                uids, matrices = read_embedding_columns(path, columns)
                if uids:
                    try:
                        units = [normalized(vectors, uids) for vectors in matrices]
                    except UserInputError as error:
                        raise UserInputError(f"{path}: {error.user_message}") from None
                    yield work(uids, *units)
    return run


_UIDS = pa.schema([("uid", pa.string())])


def embedded_kept(files: DataFrame, validated: DataFrame) -> DataFrame:
    """The uids validation kept (`validated`: its rows) that the embed stage embedded: what the stages over the
    embeddings work on."""
    def run(batches):
        for batch in batches:
            for path in batch.column("path").to_pylist():
                yield from pq.read_table(path, columns=["uid"]).to_batches()  # the uids alone, not the vectors
    embedded = files.mapInArrow(run, ddl(_UIDS))
    return validated.filter(F.col("status") == "kept").select("uid").join(embedded, "uid", "left_semi")


_VECTORS = pa.schema([("uid", pa.string()), ("vector", pa.binary())])


def vectors_where(files: DataFrame, keep) -> DataFrame:
    """uid and unit vector (float32 bytes) of the embedded images whose uids keep(uids) marks."""
    def work(uids: list[str], unit: np.ndarray) -> pa.RecordBatch:
        chosen = np.flatnonzero(keep(uids))
        return pa.RecordBatch.from_arrays([pa.array([uids[i] for i in chosen], pa.string()), as_bytes(unit[chosen])],
                                          schema=_VECTORS)
    return files.mapInArrow(per_embedding_file(work), ddl(_VECTORS))


def stacked(rows: list) -> np.ndarray:
    """The vectors of collected rows as one float32 matrix."""
    return np.stack([np.frombuffer(row["vector"], np.float32) for row in rows]) if rows else np.zeros((0, 0))


def sampled_vectors(files: DataFrame, kept: DataFrame, fraction: float, seed: int) -> np.ndarray:
    """The unit vectors of a seeded draw of about `fraction` of the `kept` uids, in uid order: the same sample
    in the same order whatever the partitioning (what k-means is fitted on, on the driver)."""
    rows = vectors_where(files, lambda uids: uid_sample(uids, fraction, seed)).join(kept, "uid", "left_semi").collect()
    return stacked(sorted(rows, key=lambda row: row["uid"]))
