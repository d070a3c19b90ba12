"""The dedup stage on Spark: the same rows as the library on the same centroids, several eps, bad input."""

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


def test_spark_dedup_equals_the_library_on_the_same_centroids(spark, tmp_path):
    vectors, _, _ = planted(count=3000, copies=300, dim=32)
    uids = [f"{index:032x}" for index in range(len(vectors))]
    write_embed_stage(tmp_path, vectors, uids)
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
    assert manifest["rows_in"] == manifest["rows_out"] == len(uids)
    kept = manifest["kept_per_eps"]
    assert int(kept["0.02"]) >= int(kept["0.1"]) and int(kept["0.1"]) <= len(uids) - 250
    assert manifest["faiss"] == "cpu" and manifest["clusters"] == 6
    read_back = Run(tmp_path)  # as the report and the notebooks see the run
    groups = read_back.duplicate_groups()
    assert len(groups) == len(uids) - int(kept["0.02"]) and set(groups["kind"]) == {"semantic"}
    embedded_uids, embedded = read_back.embeddings()
    assert embedded_uids == uids and np.array_equal(embedded, vectors.astype(np.float16).astype(np.float32))


def test_dedup_bad_inputs_are_clear_errors(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="run the embed stage first"):
        run_dedup(spark, tmp_path, DedupConfig())
    vectors, _, _ = planted(count=40, copies=4, dim=8)
    write_embed_stage(tmp_path, vectors, [f"{index:032x}" for index in range(40)], parts=1)
    with pytest.raises(UserInputError, match="--clusters must be between 1 and the number of embeddings"):
        run_dedup(spark, tmp_path, DedupConfig(clusters=41))
    empty = tmp_path / "empty"
    write_embed_stage(empty, np.zeros((0, 8), np.float32), [], parts=1)
    with pytest.raises(UserInputError, match="no embeddings to deduplicate"):
        run_dedup(spark, empty, DedupConfig(clusters=1))


def test_nan_embeddings_are_an_error_naming_the_file_and_uid(spark, tmp_path):
    vectors, _, _ = planted(count=300, copies=30, dim=8)
    vectors[250, 3] = np.nan
    write_embed_stage(tmp_path, vectors, [f"{index:032x}" for index in range(300)], parts=3)
    with pytest.raises(Exception) as raised:
        run_dedup(spark, tmp_path, DedupConfig(clusters=2))
    assert re.fullmatch(rf"{tmp_path}/embed/part-00002.parquet: 1 embeddings are NaN, infinite or zero "
                        rf"\(first: uid {250:032x}\)", user_error_message(raised.value))
    assert not (tmp_path / "dedup" / "_manifest.json").exists()
