"""Spark binding of bigram mining: validate the corpus, count words and pairs per partition, sum by key.

Each distinct caption is counted once: web pools repeat boilerplate captions, which would otherwise
pass for strong collocations. Scoring runs on the driver over the bigrams frequent enough to qualify.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from functools import reduce
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.run.directory import REJECTS, StageResult, file_identity, run_stage
from pipeline.run.stages import STAGES
from pipeline.spark.ingest import read_pool
from pipeline.spark.outputs import ddl, materialize, reason_counts, reject_columns, work_dir
from pipeline.text import pool
from pipeline.text.ingest import IngestConfig
from pipeline.vocab.bigrams import BigramThresholds, NgramCounts, score_candidates

BIGRAMS = STAGES["bigrams"]
# A word has right = null; a pair has both.
_COUNT_SCHEMA = pa.schema([("left", pa.string()), ("right", pa.string()), ("count", pa.int64())])


def _partial_counts(batches):
    counts = NgramCounts.of(text for batch in batches for text in batch.column("caption").to_pylist())
    words = list(counts.unigrams.items())
    pairs = list(counts.bigrams.items())
    yield pa.RecordBatch.from_pydict({
        "left": [word for word, _ in words] + [left for (left, _), _ in pairs],
        "right": [None] * len(words) + [right for (_, right), _ in pairs],
        "count": [count for _, count in words] + [count for _, count in pairs],
    }, schema=_COUNT_SCHEMA)


def _corpus_rows(spark: SparkSession, corpus: list[str], caption_col: str | None) -> tuple[DataFrame, list[str]]:
    """Validated rows of every corpus path (each may have its own columns), and the files read."""
    frames, files = [], []
    for path in corpus:
        units, columns = pool.resolve(path, caption_col=caption_col)
        frames.append(read_pool(spark, units, columns, IngestConfig(dedup_key="none")))
        files.extend(sorted({unit.path for unit in units}))
    return reduce(DataFrame.unionByName, frames), files


def _candidates(totals: DataFrame, min_count: int) -> tuple[pa.Table, int, int]:
    """Pairs seen at least min_count times with the counts of their words; all words; all pairs."""
    words = totals.filter(F.col("right").isNull())
    pairs = totals.filter(F.col("right").isNotNull())
    total_words = words.agg(F.sum("count")).first()[0] or 0
    total_pairs = pairs.agg(F.sum("count")).first()[0] or 0
    left = words.select(F.col("left"), F.col("count").alias("left_count"))
    right = words.select(F.col("left").alias("right"), F.col("count").alias("right_count"))
    frequent = (pairs.filter(F.col("count") >= min_count).join(left, "left").join(right, "right")
                .select(F.concat_ws(" ", "left", "right").alias("bigram"), "count", "left_count", "right_count"))
    return frequent.toArrow(), total_words, total_pairs


def run_mine_bigrams(spark: SparkSession, corpus: list[str], out: Path, thresholds: BigramThresholds,
                     caption_col: str | None = None, force: bool = False) -> dict:
    """Mine high-PMI bigrams of the captions under `corpus` into out/bigrams.parquet, with a manifest."""
    out = Path(out)
    rows, files = _corpus_rows(spark, corpus, caption_col)
    config = asdict(thresholds) | {"caption_col": caption_col, "distinct_captions": True}
    inputs = {"corpus": list(corpus), "files": file_identity([Path(path) for path in files])}

    def body(out_dir: Path) -> StageResult:
        scratch = work_dir(out_dir, "counts")
        try:
            validated = materialize(rows, work_dir(out_dir, "rows"))
            captions_read, rejected = reason_counts(validated)
            captions = validated.filter(F.col("reason").isNull()).select("caption").distinct()
            distinct = captions.count()
            totals = materialize(captions.mapInArrow(_partial_counts, ddl(_COUNT_SCHEMA))
                                 .groupBy("left", "right").agg(F.sum("count").alias("count")), scratch)
            candidates, total_words, total_pairs = _candidates(totals, thresholds.min_count)
            mined = score_candidates(candidates, total_words, total_pairs, thresholds)
            pq.write_table(mined, out_dir / BIGRAMS.files["bigrams"])
            rejects = validated.filter(F.col("reason").isNotNull())
            rejects.select(*reject_columns(rejects)).write.parquet(str(out_dir / REJECTS))
            word_count = totals.filter(F.col("right").isNull()).count()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(work_dir(out_dir, "rows"), ignore_errors=True)
        return StageResult(
            rows_in=captions_read + sum(rejected.values()), rows_out=distinct,
            rejected={**rejected, "duplicate_caption": captions_read - distinct},
            extra={"files": len(files), "words": total_words, "pairs": total_pairs, "distinct_words": word_count,
                   "bigrams_mined": mined.num_rows})

    return run_stage(out.parent, out.name, config, inputs, body, force=force)
