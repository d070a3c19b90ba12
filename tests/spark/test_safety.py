"""The NSFW filter as a stage: every image validation kept gets a score, the threshold splits them into rows and
nsfw rejects, and rebalance leaves the rejects out."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipeline.experiments.image_server import ImageServer
from pipeline.image.check import ImageLimits
from pipeline.image.download import run_download
from pipeline.image.safety import SafetyConfig
from pipeline.run.directory import REJECTS
from pipeline.run.stages import STAGES
from pipeline.spark.curate import TextCurationConfig, curate_text
from pipeline.spark.rebalance import run_rebalance
from pipeline.spark.safety import run_safety
from pipeline.spark.shards import run_write_shards
from pipeline.spark.validate import run_validate
from pipeline.text.balancing import BalanceConfig
from tests.helpers import OPTIONS

EVERY_SAMPLE = BalanceConfig(t=1000, seed=0)


@pytest.fixture
def validated(spark, tmp_path, cifar_images):
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text("\n".join(sorted({name.split("_")[1] for name in cifar_images})) + "\n")
    run = tmp_path / "run"
    with ImageServer(cifar_images) as server:
        pool = tmp_path / "pool.jsonl"
        pool.write_text("".join(json.dumps({"url": server.url("img", name), "caption": f"a {name.split('_')[1]}"})
                                + "\n" for name in cifar_images))
        curate_text(spark, TextCurationConfig(pool=str(pool), metadata=str(vocabulary), out=str(run),
                                              balance=EVERY_SAMPLE))
        run_download(run, OPTIONS)
    run_validate(spark, run, ImageLimits(min_side=0, max_aspect=3), max_distance=6)
    return run


def test_every_kept_image_is_scored_and_the_threshold_splits_them(spark, validated):
    run = validated
    kept = {row["uid"] for row in pq.read_table(run / "validate").to_pylist() if row["status"] == "kept"}
    manifest = run_safety(spark, run, SafetyConfig())
    rows = pq.read_table(STAGES["safety"].path(run)).to_pylist()
    assert {row["uid"] for row in rows} == kept and manifest["rejected"] == {}  # photos of animals and vehicles
    assert all(0.0 <= row["nsfw_score"] < 0.5 for row in rows)
    assert manifest["rows_in"] == manifest["rows_out"] == len(kept)

    # A threshold every score reaches rejects every image, each with its score; rebalance leaves them all out.
    strict = run_safety(spark, run, SafetyConfig(nsfw_threshold=0.0))
    assert strict["rows_out"] == 0 and strict["rejected"] == {"nsfw": len(kept)}
    rejects = pq.read_table(STAGES["safety"].path(run) / REJECTS).to_pylist()
    assert {row["uid"] for row in rejects} == kept
    assert all(row["reason"] == "nsfw" and row["detail"].endswith("(threshold 0)") for row in rejects)
    rebalance = run_rebalance(spark, run, EVERY_SAMPLE)
    assert rebalance["filters"] == ["safety"] and rebalance["rows_in"] == 0 and rebalance["rows_out"] == 0

    run_safety(spark, run, SafetyConfig())  # newer than that rebalance: the shards wait for a new one
    with pytest.raises(Exception, match="safety changed after rebalance ran; rerun jobs/rebalance.py"):
        run_write_shards(spark, run, run / "shards", samples_per_shard=16)
