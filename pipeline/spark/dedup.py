"""Spark binding of SemDeDup: measure separation -> sample -> k-means on the driver -> assign per file ->
dedup per cluster.

SemDeDup runs over the images validation kept. The embed stage embeds every downloaded image, so the
exact and perceptual-hash duplicates validation removed are there too: they are the known duplicates that
`--eps auto` measures the embeddings on (pipeline.semantic.separation).

The embeddings stay in DIR/embed's Parquet files (float16, which Spark cannot type): tasks read them
with pyarrow and pass the normalized vectors on as float32 bytes. Every sample is a seeded hash draw on the
uid, so it does not depend on the partitioning; each cluster is deduplicated by one task.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.errors import UserInputError
from pipeline.hashing import uid_sample
from pipeline.run.directory import REJECTS, StageResult, run_stage
from pipeline.run.stages import STAGES, fingerprints, require_upstream
from pipeline.semantic.backends import choose_backend
from pipeline.semantic.semdedup import (
    AUTO,
    DEDUP_SCHEMA,
    POINTS_PER_CENTROID,
    DedupConfig,
    assign,
    cluster_rows,
    eps_list,
    spherical_kmeans,
)
from pipeline.semantic.separation import (
    AUTO_EPS,
    DISTINCT_IMAGES,
    DUPLICATE_PAIRS,
    MAX_FALSE_MERGE,
    auto_eps,
    describe_choice,
    distinct_similarities,
    pair_similarities,
    separation_table,
)
from pipeline.spark.embeddings import (
    as_bytes,
    embedded_kept,
    embedding_files,
    per_embedding_file,
    sampled_vectors,
    stacked,
    vectors_where,
)
from pipeline.spark.outputs import ddl, reject_columns

DEDUP, EMBED, VALIDATE = STAGES["dedup"], STAGES["embed"], STAGES["validate"]
_ASSIGNED = pa.schema([("uid", pa.string()), ("cluster", pa.int32()), ("centroid_similarity", pa.float32()),
                       ("vector", pa.binary())])
_UIDS = pa.schema([("uid", pa.string())])


def _assigned(centroids_broadcast, backend: str):
    def work(uids: list[str], unit: np.ndarray) -> pa.RecordBatch:
        cluster, similarity = assign(unit, centroids_broadcast.value, choose_backend(backend))
        return pa.RecordBatch.from_arrays([pa.array(uids, pa.string()), pa.array(cluster, pa.int32()),
                                           pa.array(similarity, pa.float32()), as_bytes(unit)], schema=_ASSIGNED)
    return work


def _dedup_clusters(eps_values: tuple[float, ...], backend: str):
    def run(table: pa.Table) -> pa.Table:
        vectors = np.stack([np.frombuffer(value, np.float32) for value in table.column("vector").to_pylist()])
        return cluster_rows(table.column("uid").to_pylist(), vectors,
                            table.column("cluster")[0].as_py(),
                            table.column("centroid_similarity").to_numpy(), eps_values, choose_backend(backend))
    return run


def _drawn_uids(frame: DataFrame, fraction: float, seed: int) -> DataFrame:
    """The uids of frame (a `uid` column) in a seeded draw of about `fraction` of them."""
    def run(batches):
        for batch in batches:
            uids = batch.column("uid").to_pylist()
            yield pa.RecordBatch.from_arrays([pa.array([uid for uid, take in zip(uids, uid_sample(uids, fraction, seed))
                                                        if take], pa.string())], schema=_UIDS)
    return frame.select("uid").mapInArrow(run, ddl(_UIDS))


def _vectors_of(files: DataFrame, uids: set[str]) -> dict[str, np.ndarray]:
    """The unit vectors of the named uids (a few thousand: they come to the driver)."""
    wanted = files.sparkSession.sparkContext.broadcast(frozenset(uids))
    try:
        rows = vectors_where(files, lambda found: [uid in wanted.value for uid in found]).collect()
    finally:
        wanted.unpersist()
    return dict(zip((row["uid"] for row in rows), stacked(rows)))


def measure_separation(files: DataFrame, validated: DataFrame, candidates: int, clusters: int, eps_values,
                       seed: int) -> list[dict]:
    """The separation table (pipeline.semantic.separation) over a seeded draw of validation's duplicate pairs
    and of the images it kept."""
    duplicates = validated.filter(F.col("duplicate_of").isNotNull()).select("uid", "duplicate_of")
    known = duplicates.count()
    pairs = sorted((row["uid"], row["duplicate_of"]) for row in
                   duplicates.join(_drawn_uids(duplicates, DUPLICATE_PAIRS / max(known, 1), seed), "uid",
                                   "left_semi").collect())
    kept = validated.filter(F.col("status") == "kept")
    distinct = sorted(row["uid"] for row in _drawn_uids(kept, DISTINCT_IMAGES / max(candidates, 1), seed).collect())
    vectors = _vectors_of(files, {uid for pair in pairs for uid in pair} | set(distinct))
    pairs = [pair for pair in pairs if pair[0] in vectors and pair[1] in vectors]
    distinct = [uid for uid in distinct if uid in vectors]
    dim = next(iter(vectors.values())).shape[0] if vectors else 0

    def rows(uids: list[str]) -> np.ndarray:
        return np.stack([vectors[uid] for uid in uids]) if uids else np.zeros((0, dim), np.float32)

    duplicate_similarity = pair_similarities(rows([a for a, _ in pairs]), rows([b for _, b in pairs]))
    return separation_table(duplicate_similarity, distinct_similarities(rows(distinct)), eps_values,
                            cluster_size=candidates / max(1, min(clusters, candidates)))


def _semdedup_into(spark: SparkSession, files: DataFrame, kept: DataFrame, candidates: int, config: DedupConfig,
                   eps_values: tuple[float, ...], out_dir: Path) -> dict:
    """SemDeDup of the kept images at eps_values into out_dir; returns what the manifest says of it."""
    fraction = min(1.0, config.clusters * POINTS_PER_CENTROID / candidates)
    vectors = sampled_vectors(files, kept, fraction, config.seed)
    centroids = spherical_kmeans(vectors, min(config.clusters, len(vectors)), config.seed,
                                 backend=choose_backend(config.backend))
    centroids_broadcast = spark.sparkContext.broadcast(centroids)
    try:
        assigned = files.mapInArrow(per_embedding_file(_assigned(centroids_broadcast, config.backend)),
                                    ddl(_ASSIGNED)).join(kept, "uid", "left_semi")
        result = assigned.groupBy("cluster").applyInArrow(_dedup_clusters(eps_values, config.backend),
                                                          ddl(DEDUP_SCHEMA))
        result.write.mode("overwrite").parquet(str(out_dir))
    finally:
        centroids_broadcast.unpersist()
    np.save(out_dir / DEDUP.files["centroids"], centroids)
    return {"clusters": len(centroids), "kmeans_sample": len(vectors)}


def _write_rejects(spark: SparkSession, out_dir: Path, eps: float) -> int:
    """The samples removed at eps as rejects naming the kept sample they duplicate; returns how many."""
    removed = spark.read.parquet(str(out_dir)).filter((F.col("eps") == eps) & (F.col("status") == "removed"))
    detail = F.format_string("cosine similarity %.4f to %s (eps %s)", F.col("similarity"), F.col("duplicate_of"),
                             F.lit(f"{eps:g}"))
    rejects = removed.select("uid", F.lit("semantic_duplicate").alias("reason"), detail.alias("detail"))
    rejects.select(*reject_columns(rejects)).write.mode("overwrite").parquet(str(out_dir / REJECTS))
    return spark.read.parquet(str(out_dir / REJECTS)).count()


def semantic_duplicates(spark: SparkSession, run_dir: Path, eps: float) -> DataFrame:
    """The uids SemDeDup removed at eps (the dedup stage's rejects say whose duplicates they are)."""
    dedup = spark.read.parquet(str(DEDUP.path(run_dir)))
    return dedup.filter((F.col("eps") == eps) & (F.col("status") == "removed")).select("uid")


def run_dedup(spark: SparkSession, run_dir: Path, config: DedupConfig, force: bool = False) -> dict:
    """SemDeDup of the images validation kept, at the eps asked for or, with AUTO, at the one the separation
    table picks. The manifest's `eps` lists the eps computed (none when AUTO found none); the first is the
    stage's own: its rows_out and rejects are at that eps."""
    run_dir = Path(run_dir)
    manifests = require_upstream(run_dir, DEDUP.name)
    embedded = manifests[EMBED.folder]["rows_out"]
    if embedded == 0:
        raise UserInputError(f"{EMBED.path(run_dir)}: no embeddings to deduplicate (the run has no images)")
    asked = None if config.eps == AUTO else eps_list(config.eps)
    if not 1 <= config.clusters <= embedded:
        raise UserInputError(f"--clusters must be between 1 and the number of embeddings ({embedded}), "
                             f"got {config.clusters}")

    def body(out_dir: Path) -> StageResult:
        files = embedding_files(spark, run_dir)
        validated = spark.read.parquet(str(VALIDATE.path(run_dir))).select("uid", "status", "duplicate_of")
        kept = embedded_kept(files, validated).cache()
        try:
            candidates = kept.count()
            table = measure_separation(files, validated, candidates, config.clusters,
                                       sorted(set(AUTO_EPS) | set(asked or ())), config.seed)
            chosen = auto_eps(table) if asked is None else None
            eps_values = asked or ((chosen,) if chosen is not None else ())
            extra = {"separation": table, "max_false_merge": MAX_FALSE_MERGE,
                     "device": choose_backend(config.backend).label,
                     "auto": {"chosen": chosen, "says": describe_choice(table, chosen)} if asked is None else None}
            if eps_values and candidates:
                extra.update(_semdedup_into(spark, files, kept, candidates, config, eps_values, out_dir))
                written = pq.read_table(out_dir, columns=["status", "eps"]).to_pandas()
                removed = _write_rejects(spark, out_dir, eps_values[0])
            else:
                pq.write_table(DEDUP_SCHEMA.empty_table(), out_dir / "part-00000.parquet")
                written, removed = pq.read_table(out_dir).to_pandas(), 0
        finally:
            kept.unpersist()
        extra["eps"] = list(eps_values)
        extra["kept_per_eps"] = {str(eps): int(((written["eps"] == eps) & (written["status"] == "kept")).sum())
                                 for eps in eps_values}
        return StageResult(rows_in=candidates, rows_out=candidates - removed,
                           rejected={"semantic_duplicate": removed} if removed else {}, extra=extra)

    return run_stage(run_dir, DEDUP.folder, asdict(config), fingerprints(manifests), body, force=force)
