"""Spark binding of matching: every ingested caption against the vocabulary, in Arrow batches."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from pyspark.sql import SparkSession

from pipeline.matching import Matcher
from pipeline.rundir import StageResult, read_manifest, run_stage
from pipeline.spark.outputs import ddl, write_split

STAGE = "matches"
_SCHEMA = pa.schema([("uid", pa.string()), ("entry_ids", pa.list_(pa.int32())),
                     ("reason", pa.string()), ("detail", pa.string())])
# One matcher per Python worker process: workers are reused across tasks, the automaton is built once.
_MATCHERS: dict[tuple[str, str], Matcher] = {}


def _matcher(vocab_key: str, mode: str, entries_broadcast) -> Matcher:
    key = (vocab_key, mode)
    if key not in _MATCHERS:
        _MATCHERS.clear()
        _MATCHERS[key] = Matcher(entries_broadcast.value, mode)
    return _MATCHERS[key]


def match_batches(vocab_key: str, mode: str, entries_broadcast):
    def run(batches):
        matcher = _matcher(vocab_key, mode, entries_broadcast)
        for batch in batches:
            ids = matcher.match_batch(batch.column("caption").to_pylist())
            reason = pa.array([None if found else "no_match" for found in ids], pa.string())
            detail = pa.array([None if found else "caption matches no vocabulary entry" for found in ids],
                              pa.string())
            yield pa.RecordBatch.from_arrays(
                [batch.column("uid"), pa.array(ids, pa.list_(pa.int32())), reason, detail], schema=_SCHEMA)
    return run


def run_match(spark: SparkSession, run_dir: Path, entries: list[str], vocab_key: str, mode: str,
              force: bool = False) -> dict:
    ingest_dir = Path(run_dir) / "ingest"
    upstream = read_manifest(ingest_dir)
    if upstream is None:
        raise FileNotFoundError(f"{ingest_dir}: run the ingest stage first")
    config = {"mode": mode, "vocabulary": vocab_key, "vocabulary_size": len(entries)}

    def body(out_dir: Path) -> StageResult:
        broadcast = spark.sparkContext.broadcast(entries)
        captions = spark.read.parquet(str(ingest_dir)).select("uid", "caption")
        matched = captions.mapInArrow(match_batches(vocab_key, mode, broadcast), ddl(_SCHEMA))
        kept, rejected = write_split(matched, out_dir, ["uid", "entry_ids"])
        broadcast.unpersist()
        return StageResult(rows_in=upstream["rows_out"], rows_out=kept, rejected=rejected)

    return run_stage(run_dir, STAGE, config, {"ingest": upstream["fingerprint"]}, body, force=force)
