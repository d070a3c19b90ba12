"""Spark binding of SemDeDup: sample -> k-means on the driver -> assign per file -> dedup per cluster.

The embeddings stay in DIR/embed's Parquet files (float16, which Spark cannot type): tasks read them
with pyarrow and pass the normalized vectors on as float32 bytes. The k-means sample is a seeded hash draw on the uid, so it
does not depend on the partitioning; each cluster is deduplicated by one task.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from pipeline.errors import UserInputError
from pipeline.hashing import uid_words, uniform_draws
from pipeline.run.directory import StageResult, run_stage
from pipeline.run.stages import STAGES, fingerprints, require_upstream
from pipeline.semantic.semdedup import (
    DEDUP_SCHEMA,
    POINTS_PER_CENTROID,
    DedupConfig,
    assign,
    cluster_rows,
    eps_list,
    faiss_device,
    normalized,
    spherical_kmeans,
)
from pipeline.spark.outputs import ddl

DEDUP, EMBED = STAGES["dedup"], STAGES["embed"]
_VECTORS = pa.schema([("uid", pa.string()), ("vector", pa.binary())])
_ASSIGNED = pa.schema([("uid", pa.string()), ("cluster", pa.int32()), ("centroid_similarity", pa.float32()),
                       ("vector", pa.binary())])


def _read_vectors(path: str) -> tuple[list[str], np.ndarray]:
    table = pq.read_table(path, columns=["uid", "image"])
    column = table.column("image").combine_chunks()
    dim = column.type.list_size
    vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim) if len(column) else np.zeros((0, dim))
    return table.column("uid").to_pylist(), vectors.astype(np.float32)


def _as_bytes(vectors: np.ndarray) -> pa.Array:
    return pa.array([row.astype(np.float32).tobytes() for row in vectors], pa.binary())


def _per_file(work):
    """A mapInArrow function: read each listed embedding file and yield work(uids, unit vectors) for it."""
    def run(batches):
        for batch in batches:
            for path in batch.column("path").to_pylist():
                uids, vectors = _read_vectors(path)
                if uids:
                    try:
                        unit = normalized(vectors, uids)
                    except UserInputError as error:
                        raise UserInputError(f"{path}: {error.message}") from None
                    yield work(uids, unit)
    return run


def _sampled(fraction: float, seed: int):
    def work(uids: list[str], vectors: np.ndarray) -> pa.RecordBatch:
        high, low = uid_words(uids)
        chosen = np.flatnonzero(uniform_draws(seed, high, low, np.full(len(uids), -1)) < fraction)
        return pa.RecordBatch.from_arrays([pa.array([uids[i] for i in chosen], pa.string()),
                                           _as_bytes(vectors[chosen])], schema=_VECTORS)
    return work


def _assigned(centroids_broadcast):
    def work(uids: list[str], unit: np.ndarray) -> pa.RecordBatch:
        cluster, similarity = assign(unit, centroids_broadcast.value)
        return pa.RecordBatch.from_arrays([pa.array(uids, pa.string()), pa.array(cluster, pa.int32()),
                                           pa.array(similarity, pa.float32()), _as_bytes(unit)], schema=_ASSIGNED)
    return work


def _dedup_clusters(eps_values: tuple[float, ...]):
    def run(table: pa.Table) -> pa.Table:
        vectors = np.stack([np.frombuffer(value, np.float32) for value in table.column("vector").to_pylist()])
        return cluster_rows(table.column("uid").to_pylist(), vectors,
                            table.column("cluster")[0].as_py(),
                            table.column("centroid_similarity").to_numpy(), eps_values)
    return run


def _decode(rows: list) -> np.ndarray:
    """Vectors of collected rows (float32 bytes)."""
    return np.stack([np.frombuffer(row["vector"], np.float32) for row in rows])


def run_dedup(spark: SparkSession, run_dir: Path, config: DedupConfig, force: bool = False) -> dict:
    run_dir = Path(run_dir)
    manifests = require_upstream(run_dir, DEDUP.name)
    upstream = manifests[EMBED.folder]
    if upstream["rows_out"] == 0:
        raise UserInputError(f"{EMBED.path(run_dir)}: no embeddings to deduplicate (the run has no images)")
    eps_list(config.eps)
    if not 1 <= config.clusters <= upstream["rows_out"]:
        raise UserInputError(f"--clusters must be between 1 and the number of embeddings ({upstream['rows_out']}), "
                             f"got {config.clusters}")

    def body(out_dir: Path) -> StageResult:
        paths = sorted(str(path) for path in EMBED.path(run_dir).glob("part-*.parquet"))
        files = spark.createDataFrame([(path,) for path in paths], "path string").repartition(
            max(1, min(len(paths), spark.sparkContext.defaultParallelism)))
        fraction = min(1.0, config.clusters * POINTS_PER_CENTROID / upstream["rows_out"])
        sample = files.mapInArrow(_per_file(_sampled(fraction, config.seed)), ddl(_VECTORS)).collect()
        sample = sorted(sample, key=lambda row: row["uid"])  # the same sample in the same order every run
        centroids = spherical_kmeans(normalized(_decode(sample), [row["uid"] for row in sample]),
                                     min(config.clusters, len(sample)), config.seed)
        centroids_broadcast = spark.sparkContext.broadcast(centroids)
        try:
            assigned = files.mapInArrow(_per_file(_assigned(centroids_broadcast)), ddl(_ASSIGNED))
            result = assigned.groupBy("cluster").applyInArrow(_dedup_clusters(config.eps), ddl(DEDUP_SCHEMA))
            result.write.mode("overwrite").parquet(str(out_dir))
        finally:
            centroids_broadcast.unpersist()
        np.save(out_dir / DEDUP.files["centroids"], centroids)
        written = pq.read_table(out_dir, columns=["status", "eps"]).to_pandas()
        sizes = {str(eps): int(((written["eps"] == eps) & (written["status"] == "kept")).sum()) for eps in config.eps}
        per_eps = len(written) // len(config.eps)
        return StageResult(rows_in=upstream["rows_out"], rows_out=per_eps,
                           extra={"kept_per_eps": sizes, "clusters": len(centroids), "kmeans_sample": len(sample),
                                  "faiss": faiss_device()})

    return run_stage(run_dir, DEDUP.folder, asdict(config), fingerprints(manifests), body, force=force)
