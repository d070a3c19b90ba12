"""DataComp's subset format: the shards' uids as a sorted array of two uint64 each, written whole; and a pool read
from DataComp's metadata parquet keeps DataComp's uids, so the subset selects the same samples there."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError
from pipeline.run.export import SUBSET_DTYPE, export_uids, hex_uids, uid_array
from tests.helpers import LAION, require_shared_data

UIDS = ["ffffffffffffffff0000000000000001", "0000000000000001ffffffffffffffff", "8000000000000000000000000000000a"]


def test_uids_become_datacomps_sorted_pairs_of_uint64_and_come_back(tmp_path):
    index = tmp_path / "index.parquet"
    pq.write_table(pa.table({"uid": UIDS, "shard": [0, 0, 1]}), index)
    assert export_uids(index, tmp_path / "subset.npy") == 3
    array = np.load(tmp_path / "subset.npy")
    assert array.dtype == SUBSET_DTYPE and array.dtype == np.dtype("u8,u8")
    assert [tuple(map(int, pair)) for pair in array] == [(1, 2**64 - 1), (2**63, 10), (2**64 - 1, 1)]
    assert hex_uids(array) == sorted(UIDS) and (np.sort(array) == array).all()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["index.parquet", "subset.npy"]  # no partial file


@pytest.mark.parametrize("bad, says", [(["ab" * 15], "row 0: uid 'ababababababababababababababab' is not 32 hex"),
                                       ([UIDS[0], "g" * 32], "row 1: uid 'gggggggggggggggggggggggggggggggg'"),
                                       ([UIDS[0], UIDS[0].upper()], "row 1: uid FFFFFFFFFFFFFFFF00000000000000"
                                                                    "01 appears twice")])
def test_a_uid_datacomp_cannot_hold_is_an_error_naming_its_row_and_nothing_is_written(tmp_path, bad, says):
    index = tmp_path / "index.parquet"
    pq.write_table(pa.table({"uid": bad}), index)
    with pytest.raises(UserInputError, match=says):
        export_uids(index, tmp_path / "subset.npy")
    assert not (tmp_path / "subset.npy").exists()


def test_a_missing_shard_index_says_what_to_run(tmp_path):
    with pytest.raises(UserInputError, match="no shard index; run jobs/write_shards.py first"):
        export_uids(tmp_path / "shards" / "index.parquet", tmp_path / "subset.npy")


def test_random_uids_round_trip():
    uids = [bytes(row).hex() for row in np.random.default_rng(0).integers(0, 256, (1000, 16), dtype=np.uint8)]
    assert hex_uids(uid_array(uids)) == sorted(uids)


def test_a_datacomp_metadata_parquet_read_as_a_pool_keeps_its_uids(spark, tmp_path):
    """DataComp's metadata columns (uid, url, text, sizes, its CLIP scores, sha256) as its parquet has them."""
    from pipeline.spark.ingest import run_ingest
    from pipeline.text.ingest import IngestConfig

    captions = pq.read_table(require_shared_data(LAION)).slice(0, 200)
    rng = np.random.default_rng(0)
    uids = [bytes(rng.integers(0, 256, 16, dtype=np.uint8)).hex() for _ in range(captions.num_rows)]
    metadata = pa.table({"uid": uids, "url": captions.column("URL"), "text": captions.column("TEXT"),
                         "original_width": [256] * len(uids), "original_height": [256] * len(uids),
                         "clip_b32_similarity_score": rng.random(len(uids)).astype(np.float32),
                         "clip_l14_similarity_score": rng.random(len(uids)).astype(np.float32),
                         "sha256": [f"{i:064x}" for i in range(len(uids))]})
    pq.write_table(metadata, tmp_path / "metadata.parquet")
    manifest = run_ingest(spark, str(tmp_path / "metadata.parquet"), tmp_path / "run", IngestConfig(dedup_key="none"))
    assert manifest["rows_out"] == len(uids)
    ingested = pq.read_table(tmp_path / "run" / "ingest", columns=["uid", "url"]).to_pylist()
    assert {row["uid"]: row["url"] for row in ingested} == dict(zip(uids, captions.column("URL").to_pylist()))
    assert hex_uids(uid_array([row["uid"] for row in ingested])) == sorted(uids)
