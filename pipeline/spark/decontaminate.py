"""Spark binding of decontamination: the images validation kept, checked against an evaluation set.

The evaluation set is read and fingerprinted on the driver (and embedded with the embed stage's model when
the run has embeddings); its hashes and vectors travel to the tasks as broadcasts. Tasks compare the pool's
sha256 and pHash (from DIR/validate) and its embeddings (DIR/embed, FAISS search for the nearest evaluation
image). Matches are few: they come back to the driver, which names the evaluation image in each reject.

The semantic test guards itself as `--eps auto` does: when random pairs of pool and evaluation images pass
the threshold more often than separation.MAX_FALSE_MERGE (an embedder that puts everything together), it is
skipped, and the manifest says why.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.hashing import uid_sample
from pipeline.image.contamination import DecontaminationConfig, EvalMatch, describe, hash_matches
from pipeline.image.evalset import EvalSet, read_eval_set
from pipeline.run.directory import StageResult, run_stage
from pipeline.run.stages import STAGES, fingerprints, present_upstream, require_upstream
from pipeline.semantic.backends import choose_backend
from pipeline.semantic.embedding import EmbedConfig, image_embedder
from pipeline.semantic.semdedup import assign
from pipeline.semantic.separation import DISTINCT_IMAGES, MAX_FALSE_MERGE, cross_match_rate
from pipeline.spark.embeddings import embedding_files, per_embedding_file, stacked, vectors_where
from pipeline.spark.outputs import ddl, write_split

DECONTAMINATE, VALIDATE, EMBED = STAGES["decontaminate"], STAGES["validate"], STAGES["embed"]
_MATCHES = pa.schema([("uid", pa.string()), ("eval_index", pa.int64()), ("kind", pa.string()),
                      ("score", pa.float64())])
_KIND_ORDER = {"exact": 0, "near": 1, "semantic": 2}  # the strongest evidence names the reject


def _match_batch(uids: list[str], matches: list[EvalMatch]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"uid": uids[match.row], "eval_index": match.eval_index, "kind": match.kind,
                                        "score": match.score} for match in matches], schema=_MATCHES)


def _hash_matcher(reference, max_distance: int):
    def run(batches):
        for batch in batches:
            sha256, phash = reference.value
            yield _match_batch(batch.column("uid").to_pylist(), hash_matches(
                batch.column("sha256").to_pylist(), batch.column("phash").to_numpy(zero_copy_only=False),
                sha256, phash, max_distance))
    return run


def _semantic_matcher(reference, threshold: float):
    def work(uids: list[str], unit: np.ndarray) -> pa.RecordBatch:
        nearest, similarity = assign(unit, reference.value)
        return _match_batch(uids, [EvalMatch(row, int(nearest[row]), "semantic", float(similarity[row]))
                                   for row in np.flatnonzero(similarity > threshold)])
    return work


def _semantic_matches(spark: SparkSession, run_dir: Path, embedded: int, evalset: EvalSet, threshold: float,
                      seed: int) -> tuple[dict, list]:
    """How often unrelated pool and evaluation images pass the threshold, and, when rarely enough, the pool
    images above it (rows of _MATCHES)."""
    files = embedding_files(spark, run_dir)
    fraction = min(1.0, DISTINCT_IMAGES / max(embedded, 1))
    pool = stacked(vectors_where(files, lambda uids: uid_sample(uids, fraction, seed)).collect())
    rate = cross_match_rate(pool, evalset.vectors[:DISTINCT_IMAGES], threshold)
    report = {"threshold": threshold, "unrelated_pairs": len(pool) * min(len(evalset.names), DISTINCT_IMAGES),
              "unrelated_match_rate": rate, "device": choose_backend().label, "applied": rate is not None and
              rate < MAX_FALSE_MERGE}
    if not report["applied"]:
        report["says"] = ("semantic check skipped: no pool embeddings to measure" if rate is None else
                          f"semantic check skipped: {rate:.1%} of unrelated pool/evaluation pairs pass cosine "
                          f"{threshold:g} (limit {MAX_FALSE_MERGE:.0%}); the embedder does not separate images")
        return report, []
    reference = spark.sparkContext.broadcast(evalset.vectors)
    try:
        return report, files.mapInArrow(per_embedding_file(_semantic_matcher(reference, threshold)),
                                        ddl(_MATCHES)).collect()
    finally:
        reference.unpersist()


def _rejects(spark: SparkSession, found: list, evalset: EvalSet) -> DataFrame:
    """One reject per matched pool image, naming the evaluation image of its strongest match."""
    best: dict[str, tuple] = {}
    for row in found:
        key = (_KIND_ORDER[row["kind"]], -row["score"] if row["kind"] == "semantic" else row["score"],
               row["eval_index"])
        if row["uid"] not in best or key < best[row["uid"]][0]:
            best[row["uid"]] = (key, row)
    rows = [(uid, "eval_duplicate", describe(EvalMatch(0, row["eval_index"], row["kind"], row["score"]),
                                              evalset.names[row["eval_index"]]), row["kind"])
            for uid, (_, row) in sorted(best.items())]
    return spark.createDataFrame(rows, "uid string, reason string, detail string, match string")


def run_decontaminate(spark: SparkSession, run_dir: Path, config: DecontaminationConfig, seed: int = 0,
                      force: bool = False) -> dict:
    """Remove the images validation kept that duplicate an evaluation image; the stage's rows are the rest."""
    run_dir = Path(run_dir)
    manifests = require_upstream(run_dir, DECONTAMINATE.name)
    embed = present_upstream(run_dir, DECONTAMINATE.name).get(EMBED.folder)
    evalset = read_eval_set(config.eval, image_embedder(EmbedConfig(**embed["config"])) if embed else None)
    inputs = fingerprints(manifests | ({EMBED.folder: embed} if embed else {}))
    stage_config = asdict(config) | {"eval_fingerprint": evalset.fingerprint, "seed": seed}

    def body(out_dir: Path) -> StageResult:
        kept = (spark.read.parquet(str(VALIDATE.path(run_dir))).filter(F.col("status") == "kept")
                .select("uid", "sha256", "phash"))
        reference = spark.sparkContext.broadcast(({digest: index for index, digest in
                                                   reversed(list(enumerate(evalset.sha256)))}, evalset.phash))
        try:
            found = kept.mapInArrow(_hash_matcher(reference, config.max_phash_distance), ddl(_MATCHES)).collect()
        finally:
            reference.unpersist()
        semantic = None
        if embed is not None:
            semantic, more = _semantic_matches(spark, run_dir, embed["rows_out"], evalset, config.semantic_threshold,
                                               seed)
            found += more
        rejects = _rejects(spark, found, evalset).join(kept.select("uid"), "uid", "left_semi")
        result = kept.select("uid").join(rejects, "uid", "left")
        kept_rows, rejected = write_split(result, out_dir, ["uid"])
        by_match = {row["match"]: row["count"] for row in rejects.groupBy("match").count().collect()}
        return StageResult(rows_in=manifests[VALIDATE.folder]["rows_out"], rows_out=kept_rows, rejected=rejected,
                           extra={"eval_images": len(evalset.names), "eval_sources": list(config.eval),
                                  "removed_by_match": by_match, "semantic": semantic})

    return run_stage(run_dir, DECONTAMINATE.folder, stage_config, inputs, body, force=force)
