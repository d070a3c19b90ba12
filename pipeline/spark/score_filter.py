"""Spark binding of the score filters (pipeline.semantic.score_filters) over the images validation kept and, when
the run has a dedup stage, SemDeDup kept at its own (first) eps: the paper prunes a deduplicated pool.

1. A seeded draw of their image vectors comes to the driver, where k-means fits the image-based filter's and
   density pruning's centroids (FAISS, on a GPU when present); the target images are embedded there with the
   embed stage's model.
2. One task per embedding file scores its samples (image-caption cosine) and assigns them to both sets of
   centroids; the rows are computed once (materialized).
3. The driver takes the CLIP-score threshold from the scores alone (4 bytes a sample), and density pruning's
   quotas from per-cluster sums; a window per cluster ranks the samples that reach pruning, least prototypical
   first with the uid breaking ties, so the decisions do not depend on the partitioning.

DIR/score_filter holds every decision (uid, score, target_cluster, cluster, centroid_similarity, kept, reason);
_rejects the rejected samples with why; rebalance leaves them out like the other filters' rejects.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipeline.errors import UserInputError
from pipeline.image.evalset import read_eval_set
from pipeline.run.directory import StageResult, run_stage
from pipeline.run.stages import STAGES, fingerprints, present_upstream, require_upstream
from pipeline.semantic.backends import choose_backend
from pipeline.semantic.embedding import EmbedConfig, image_embedder
from pipeline.semantic.score_filters import (
    LOW_CLIP_SCORE,
    OFF_TARGET,
    PRUNED_DENSE,
    ScoreFilterConfig,
    clip_scores,
    cluster_complexity,
    cluster_quotas,
    density_total,
    fit_centroids,
    score_threshold,
    target_clusters,
)
from pipeline.semantic.semdedup import POINTS_PER_CENTROID, assign
from pipeline.spark.dedup import semantic_duplicates
from pipeline.spark.embeddings import embedded_kept, embedding_files, per_embedding_file, sampled_vectors
from pipeline.spark.outputs import ddl, materialize, reason_counts, work_dir, write_rows_and_rejects

SCORE_FILTER, EMBED, VALIDATE, DEDUP = (STAGES[name] for name in ("score_filter", "embed", "validate", "dedup"))
_SCORED = pa.schema([("uid", pa.string()), ("score", pa.float32()), ("target_cluster", pa.int32()),
                     ("cluster", pa.int32()), ("centroid_similarity", pa.float32())])
DECISION_COLUMNS = ["uid", "score", "target_cluster", "cluster", "centroid_similarity", "kept", "reason"]
QUANTILES = tuple(round(q, 2) for q in np.arange(0.05, 1.0, 0.05))  # the manifest's score sweep


def _scored(centroids_broadcast, backend: str):
    """Per embedding file: each sample's CLIP score and its nearest centroid of each fitted set."""
    def work(uids: list[str], image: np.ndarray, text: np.ndarray) -> pa.RecordBatch:
        engine, centroids = choose_backend(backend), centroids_broadcast.value
        nulls = pa.nulls(len(uids), pa.int32())
        target = pa.array(assign(image, centroids["target"], engine)[0], pa.int32()) if "target" in centroids \
            else nulls
        if "density" in centroids:
            cluster, similarity = assign(image, centroids["density"], engine)
            density = [pa.array(cluster, pa.int32()), pa.array(similarity, pa.float32())]
        else:
            density = [nulls, pa.nulls(len(uids), pa.float32())]
        return pa.RecordBatch.from_arrays([pa.array(uids, pa.string()), pa.array(clip_scores(image, text)), target,
                                           *density], schema=_SCORED)
    return work


def _fit(files: DataFrame, kept: DataFrame, candidates: int, config: ScoreFilterConfig) -> dict[str, np.ndarray]:
    """The centroids each asked clustering needs, fitted on one seeded draw of the candidates' image vectors."""
    wanted = {name: clusters for name, clusters, asked in (("target", config.centroids, config.image_based),
                                                           ("density", config.density_clusters,
                                                            config.density_prune is not None)) if asked}
    if not wanted:
        return {}
    sample = sampled_vectors(files, kept, min(1.0, max(wanted.values()) * POINTS_PER_CENTROID / candidates),
                             config.seed)
    engine = choose_backend(config.backend)
    return {name: fit_centroids(sample, clusters, config.seed, engine) for name, clusters in wanted.items()}


def _density_pruned(frame: DataFrame, centroids: np.ndarray, config: ScoreFilterConfig) -> tuple[DataFrame, pa.Table]:
    """frame with PRUNED_DENSE given to the samples each cluster prunes, and the per-cluster table."""
    spark = frame.sparkSession
    alive = F.col("reason").isNull()
    sums = {row["cluster"]: row for row in frame.filter(alive).groupBy("cluster").agg(
        F.count("*").alias("size"), F.sum(1.0 - F.col("centroid_similarity")).alias("distance")).collect()}
    sizes = np.array([sums[j]["size"] if j in sums else 0 for j in range(len(centroids))], np.int64)
    intra = np.array([sums[j]["distance"] / sums[j]["size"] if j in sums else 0.0 for j in range(len(centroids))])
    complexity = cluster_complexity(centroids, intra, config.density_neighbours)
    quotas = cluster_quotas(complexity, sizes, density_total(config, int(sizes.sum())), config.temperature)
    clusters = pa.table({"cluster": pa.array(range(len(centroids)), pa.int32()), "size": sizes, "d_intra": intra,
                         "complexity": complexity, "kept": quotas})
    quota = spark.createDataFrame(
        [(j, int(sizes[j]), int(quotas[j]), float(complexity[j])) for j in range(len(centroids))],
        "cluster int, cluster_size long, quota long, complexity double")
    rank = F.row_number().over(Window.partitionBy("cluster", alive).orderBy("centroid_similarity", "uid"))
    ranked = frame.withColumn("rank", F.when(alive, rank)).join(F.broadcast(quota), "cluster", "left")
    pruned = alive & (F.col("rank") > F.col("quota"))
    detail = F.format_string("cluster %d keeps %d of its %d (complexity %.4g); similarity to its centroid %.4f",
                             F.col("cluster"), F.col("quota"), F.col("cluster_size"), F.col("complexity"),
                             F.col("centroid_similarity"))
    return (ranked.withColumn("detail", F.when(pruned, detail).otherwise(F.col("detail")))
            .withColumn("reason", F.when(pruned, F.lit(PRUNED_DENSE)).otherwise(F.col("reason")))
            .drop("rank", "cluster_size", "quota", "complexity")), clusters


def _decided(scored: DataFrame, config: ScoreFilterConfig, centroids: dict,
             target: np.ndarray | None) -> tuple[DataFrame, dict, pa.Table | None]:
    """Every sample with its reason (null where kept) and detail; what the manifest says of the filters; density
    pruning's per-cluster table, when it ran."""
    scores = scored.select("score").toArrow().column("score").to_numpy()
    threshold = score_threshold(config, scores)
    report = {"candidates": len(scores), "threshold": threshold,
              "score_quantiles": {str(q): float(v) for q, v in zip(QUANTILES, np.quantile(scores, QUANTILES))}
              if len(scores) else {}}
    reason, detail = F.lit(None).cast("string"), F.lit(None).cast("string")
    if threshold is not None:
        low = F.col("score") < threshold
        reason = F.when(low, F.lit(LOW_CLIP_SCORE))
        detail = F.when(low, F.format_string("CLIP score %.4f below %.4f", F.col("score"), F.lit(threshold)))
    if "target" in centroids:
        on_target = [int(cluster) for cluster in target_clusters(target, centroids["target"],
                                                                 choose_backend(config.backend))]
        off = reason.isNull() & ~F.col("target_cluster").isin(on_target)
        reason = F.when(off, F.lit(OFF_TARGET)).otherwise(reason)
        detail = F.when(off, F.format_string(f"nearest centroid %d is no target image's ({len(on_target)} of "
                                             f"{len(centroids['target'])} are)", F.col("target_cluster"))
                        ).otherwise(detail)
        report["image_based"] = {"target_images": len(target), "clusters": len(centroids["target"]),
                                 "target_clusters": len(on_target)}
    frame, clusters = scored.withColumn("reason", reason).withColumn("detail", detail), None
    if "density" in centroids:
        frame, clusters = _density_pruned(frame, centroids["density"], config)
        report["density"] = {"clusters": len(centroids["density"]),
                             "reaching": int(clusters.column("size").to_numpy().sum()),
                             "kept": int(clusters.column("kept").to_numpy().sum()),
                             "temperature": config.temperature, "neighbours": config.density_neighbours}
    return frame.withColumn("kept", F.col("reason").isNull()), report, clusters


def run_score_filter(spark: SparkSession, run_dir: Path, config: ScoreFilterConfig, force: bool = False) -> dict:
    """CLIP score, image-based and density-based filters over the images validation kept, as asked."""
    run_dir = Path(run_dir)
    if not config.asked():
        raise UserInputError("no filter asked: give --clip-score-min, --clip-score-top, --image-based or "
                             "--density-prune")
    manifests = require_upstream(run_dir, SCORE_FILTER.name)
    if manifests[EMBED.folder]["rows_out"] == 0:
        raise UserInputError(f"{EMBED.path(run_dir)}: no embeddings to score (the run has no images)")
    dedup = present_upstream(run_dir, SCORE_FILTER.name).get(DEDUP.folder)
    after_eps = dedup["eps"][0] if dedup and dedup["eps"] else None  # the dedup stage's own eps, as rebalance's default
    inputs = fingerprints(manifests | ({DEDUP.folder: dedup} if dedup else {}))
    target = None
    if config.image_based:
        model = image_embedder(EmbedConfig(**manifests[EMBED.folder]["config"]))  # the pool's embedder
        target_set = read_eval_set(config.target_images, model)
        target, inputs["target_images"] = target_set.vectors, target_set.fingerprint

    def body(out_dir: Path) -> StageResult:
        files = embedding_files(spark, run_dir)
        validated = spark.read.parquet(str(VALIDATE.path(run_dir))).select("uid", "status")
        kept = embedded_kept(files, validated)
        if after_eps is not None:  # the paper prunes what SemDeDup kept: duplicates would make clusters look dense
            kept = kept.join(semantic_duplicates(spark, run_dir, after_eps), "uid", "left_anti")
        kept = materialize(kept, work_dir(out_dir, "candidates"))
        try:
            candidates = kept.count()
            centroids = _fit(files, kept, candidates, config) if candidates else {}
            broadcast = spark.sparkContext.broadcast(centroids)
            try:
                scored = materialize(files.mapInArrow(per_embedding_file(_scored(broadcast, config.backend),
                                                                         ("image", "text")), ddl(_SCORED))
                                     .join(kept, "uid", "left_semi"), work_dir(out_dir, "scored"))
            finally:
                broadcast.unpersist()
            decided, report, clusters = _decided(scored, config, centroids, target)
            decided = materialize(decided, work_dir(out_dir, "decided"))
            write_rows_and_rejects(decided.select(*DECISION_COLUMNS), decided.filter(F.col("reason").isNotNull()),
                                   out_dir)
            if clusters is not None:
                pq.write_table(clusters, out_dir / SCORE_FILTER.files["clusters"])
            kept_rows, rejected = reason_counts(decided)
        finally:
            for name in ("candidates", "scored", "decided"):
                shutil.rmtree(work_dir(out_dir, name), ignore_errors=True)
        report["device"], report["dedup_eps"] = choose_backend(config.backend).label, after_eps
        return StageResult(rows_in=candidates, rows_out=kept_rows, rejected=rejected, extra=report)

    return run_stage(run_dir, SCORE_FILTER.folder, asdict(config), inputs, body, force=force)
