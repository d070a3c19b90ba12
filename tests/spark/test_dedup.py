"""The dedup stage on Spark: the same rows as the library on the same centroids, several eps, --eps auto on
embedders that do and do not separate images, bad input."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError, user_error_message
from pipeline.run.data import Run
from pipeline.run.directory import StageResult, run_stage
from pipeline.run.stages import STAGES
from pipeline.semantic.semdedup import DedupConfig, assign, cluster_rows, normalized
from pipeline.spark.dedup import run_dedup
from tests.helpers import planted


def write_embed_stage(run_dir, vectors: np.ndarray, uids: list[str], parts: int = 3) -> None:
    """DIR/embed as the embed stage writes it: Parquet parts of uid + float16 vectors, and a manifest."""
    def body(out_dir):
        for part, rows in enumerate(np.array_split(np.arange(len(uids)), parts)):
            half = vectors[rows].astype(np.float16)
            column = pa.FixedSizeListArray.from_arrays(pa.array(half.reshape(-1), pa.float16()), vectors.shape[1])
            pq.write_table(pa.table({"uid": [uids[i] for i in rows], "image": column, "text": column}),
                           out_dir / f"part-{part:05d}.parquet")
        return StageResult(len(uids), len(uids))

    run_stage(run_dir, "embed", {}, {}, body, force=True)


def write_validate_stage(run_dir, uids: list[str], duplicate_of: dict[str, str] | None = None) -> None:
    """DIR/validate as validation writes it (the columns dedup reads): every uid kept but the known duplicates,
    each naming the image it duplicates."""
    duplicate_of = duplicate_of or {}

    def body(out_dir):
        known = [uid in duplicate_of for uid in uids]
        pq.write_table(pa.table({
            "uid": pa.array(uids, pa.string()), "status": ["rejected" if dup else "kept" for dup in known],
            "reason": pa.array(["duplicate" if dup else None for dup in known], pa.string()),
            "detail": pa.array(["same sha256" if dup else None for dup in known], pa.string()),
            "duplicate_of": pa.array([duplicate_of.get(uid) for uid in uids], pa.string()),
        }), out_dir / "part-0.parquet")
        return StageResult(len(uids), len(uids) - len(duplicate_of), {"duplicate": len(duplicate_of)})

    run_stage(run_dir, "validate", {}, {}, body, force=True)


def write_run(run_dir, vectors: np.ndarray, uids: list[str], duplicate_of: dict[str, str] | None = None,
              parts: int = 3) -> None:
    write_embed_stage(run_dir, vectors, uids, parts)
    write_validate_stage(run_dir, uids, duplicate_of)


def test_spark_dedup_equals_the_library_on_the_same_centroids(spark, tmp_path):
    vectors, _, _ = planted(count=3000, copies=300, dim=32)
    uids = [f"{index:032x}" for index in range(len(vectors))]
    write_run(tmp_path, vectors, uids)
    manifest = run_dedup(spark, tmp_path, DedupConfig(eps=(0.02, 0.1), clusters=6, seed=0))
    result = pq.read_table(tmp_path / "dedup").sort_by([("eps", "ascending"), ("uid", "ascending")])
    centroids = np.load(STAGES["dedup"].file(tmp_path, "centroids"))
    unit = normalized(vectors.astype(np.float16).astype(np.float32), uids)
    cluster, similarity = assign(unit, centroids)
    expected = pa.concat_tables([
        cluster_rows([uids[i] for i in np.flatnonzero(cluster == label)], unit[cluster == label], int(label),
                     similarity[cluster == label], (0.02, 0.1)) for label in np.unique(cluster)
    ]).sort_by([("eps", "ascending"), ("uid", "ascending")])
    assert result.equals(expected)
    kept = manifest["kept_per_eps"]
    assert manifest["eps"] == [0.02, 0.1] and manifest["auto"] is None
    assert manifest["rows_in"] == len(uids) and manifest["rows_out"] == int(kept["0.02"])  # at its first eps
    assert manifest["rejected"] == {"semantic_duplicate": len(uids) - int(kept["0.02"])}
    rejects = pq.read_table(tmp_path / "dedup" / "_rejects").to_pylist()
    assert {row["uid"] for row in rejects} == {row["uid"] for row in result.to_pylist()
                                                 if row["eps"] == 0.02 and row["status"] == "removed"}
    assert int(kept["0.02"]) >= int(kept["0.1"]) and int(kept["0.1"]) <= len(uids) - 250
    assert manifest["device"] == "faiss-cpu" and manifest["clusters"] == 6
    read_back = Run(tmp_path)  # as the report and the notebooks see the run
    groups = read_back.duplicate_groups()
    assert len(groups) == len(uids) - int(kept["0.02"]) and set(groups["kind"]) == {"semantic"}
    embedded_uids, embedded = read_back.embeddings()
    assert embedded_uids == uids and np.array_equal(embedded, vectors.astype(np.float16).astype(np.float32))


def test_dedup_bad_inputs_are_clear_errors(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run validate and embed first \(jobs/validate.py, jobs/embed.py\)"):
        run_dedup(spark, tmp_path, DedupConfig())
    vectors, _, _ = planted(count=40, copies=4, dim=8)
    write_run(tmp_path, vectors, [f"{index:032x}" for index in range(40)], parts=1)
    with pytest.raises(UserInputError, match="--clusters must be between 1 and the number of embeddings"):
        run_dedup(spark, tmp_path, DedupConfig(clusters=41))
    empty = tmp_path / "empty"
    write_run(empty, np.zeros((0, 8), np.float32), [], parts=1)
    with pytest.raises(UserInputError, match="no embeddings to deduplicate"):
        run_dedup(spark, empty, DedupConfig(clusters=1))


def test_nan_embeddings_are_an_error_naming_the_file_and_uid(spark, tmp_path):
    vectors, _, _ = planted(count=300, copies=30, dim=8)
    vectors[250, 3] = np.nan
    write_run(tmp_path, vectors, [f"{index:032x}" for index in range(300)], parts=3)
    with pytest.raises(Exception) as raised:
        run_dedup(spark, tmp_path, DedupConfig(eps=(0.05,), clusters=2))
    assert re.fullmatch(rf"{tmp_path}/embed/part-00002.parquet: 1 embeddings are NaN, infinite or zero "
                        rf"\(first: uid {250:032x}\)", user_error_message(raised.value))
    assert not (tmp_path / "dedup" / "_manifest.json").exists()


def test_eps_auto_on_an_embedder_that_separates_finds_the_known_duplicates(spark, tmp_path):
    vectors, _, sources = planted(count=1_500, copies=150, dim=32)
    uids = [f"{index:032x}" for index in range(len(vectors))]
    known = {uids[1_350 + index]: uids[source] for index, source in enumerate(sources[:100])}  # 50 copies unknown
    write_run(tmp_path, vectors, uids, known)
    manifest = run_dedup(spark, tmp_path, DedupConfig(clusters=20))
    chosen = manifest["auto"]["chosen"]
    row = next(row for row in manifest["separation"] if row["eps"] == chosen)
    assert chosen >= 0.05 and manifest["eps"] == [chosen]
    assert row["duplicate_pairs"] == 100 and row["duplicate_recall"] == 1.0 and row["false_merge_rate"] < 0.01
    assert manifest["auto"]["says"].startswith(f"eps auto: {chosen:g} merges")
    # SemDeDup ran over what validation kept: the 50 unknown copies go, the known ones were never candidates
    result = pq.read_table(tmp_path / "dedup").to_pylist()
    assert {row["uid"] for row in result} == set(uids) - set(known)
    removed = {row["uid"] for row in result if row["status"] == "removed"}
    unknown_pairs = [{uids[1_450 + index], uids[source]} for index, source in enumerate(sources[100:])]
    assert all(len(pair & removed) == 1 for pair in unknown_pairs) and len(removed) <= 55
    assert manifest["rows_in"] == len(uids) - 100 and manifest["rows_out"] == manifest["rows_in"] - len(removed)


def test_eps_auto_removes_nothing_when_the_embeddings_are_all_alike(spark, tmp_path):
    rng = np.random.default_rng(0)
    alike = (1.0 + rng.normal(scale=0.003, size=(400, 16))).astype(np.float32)
    uids = [f"{index:032x}" for index in range(400)]
    write_run(tmp_path, alike, uids, {uids[399]: uids[0]})
    manifest = run_dedup(spark, tmp_path, DedupConfig(clusters=2))
    assert manifest["auto"]["chosen"] is None and manifest["eps"] == [] and manifest["kept_per_eps"] == {}
    assert manifest["rows_in"] == manifest["rows_out"] == 399 and manifest["rejected"] == {}
    assert "the embedder does not separate images, so SemDeDup removes nothing" in manifest["auto"]["says"]
    assert pq.read_table(tmp_path / "dedup").num_rows == 0
