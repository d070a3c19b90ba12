"""The final balance in the main line: only what validation and semantic dedup (at one eps) kept reaches the
shards, every removal is a reject with its reason, another eps recomputes only rebalance and shards, and shards
are refused over a rebalance that an upstream change has outdated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError
from pipeline.experiments.image_server import ImageServer
from pipeline.image.check import ImageLimits
from pipeline.image.download import run_download
from pipeline.run.directory import REJECTS
from pipeline.run.stages import STAGES
from pipeline.semantic.embedding import EmbedConfig
from pipeline.semantic.semdedup import DedupConfig
from pipeline.spark.curate import TextCurationConfig, curate_text
from pipeline.spark.dedup import run_dedup
from pipeline.spark.embed import run_embed
from pipeline.spark.rebalance import run_rebalance
from pipeline.spark.shards import run_write_shards
from pipeline.spark.validate import run_validate
from pipeline.text.balancing import BalanceConfig
from tests.helpers import OPTIONS

LIMITS = ImageLimits(min_side=0, max_aspect=3)
EVERY_SAMPLE = BalanceConfig(t=1000, seed=0)  # no entry is capped: what leaves is what dedup removed


def uids(path, status: str | None = None, eps: float | None = None) -> set[str]:
    table = pq.read_table(path).to_pylist()
    return {row["uid"] for row in table
            if (status is None or row["status"] == status) and (eps is None or row["eps"] == eps)}


@pytest.fixture(scope="module")
def embedded(spark, tmp_path_factory, cifar_images):
    """A curated run of the 40 CIFAR images, downloaded, validated and embedded by the untrained tiny model."""
    tmp_path = tmp_path_factory.mktemp("embedded")
    vocabulary = tmp_path / "vocab.txt"
    labels = sorted({name.split("_")[1] for name in cifar_images})
    vocabulary.write_text("\n".join(labels) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    with ImageServer(cifar_images) as server:
        pool = tmp_path / "pool.jsonl"
        pool.write_text("".join(json.dumps({"url": server.url("img", name),
                                            "caption": f"a photo of a {name.split('_')[1]}"}) + "\n"
                                for name in cifar_images))
        curate_text(spark, TextCurationConfig(pool=str(pool), metadata=str(vocabulary), out=str(run),
                                              balance=EVERY_SAMPLE))
        run_download(run, OPTIONS)
    run_validate(spark, run, LIMITS, max_distance=6)
    run_embed(spark, run, EmbedConfig(batch_size=16))
    return run


@pytest.fixture
def embedded_run(embedded, tmp_path):
    """A copy of that run for one test to change."""
    return Path(shutil.copytree(embedded, tmp_path / "run"))


def test_only_samples_validation_and_dedup_kept_reach_the_shards(spark, embedded_run):
    run = embedded_run
    run_dedup(spark, run, DedupConfig(eps=(0.02, 0.3), clusters=2, seed=0))
    rebalance = run_rebalance(spark, run, EVERY_SAMPLE, eps=0.3)
    shards = run_write_shards(spark, run, run / "shards", samples_per_shard=16)

    validated = uids(STAGES["validate"].path(run), "kept")
    removed = validated - uids(STAGES["dedup"].path(run), "kept", eps=0.3)
    assert removed, "the untrained model's embeddings are alike: eps 0.3 must merge some"
    final = uids(STAGES["rebalance"].path(run))
    assert final == validated - removed
    assert {row["uid"] for row in pq.read_table(run / "shards" / STAGES["shards"].files["index"]).to_pylist()} == final
    at_first_eps = validated - uids(STAGES["dedup"].path(run), "kept", eps=0.02)
    rejects = pq.read_table(STAGES["dedup"].path(run) / REJECTS).to_pylist()  # the dedup stage's, at its first eps
    assert {row["uid"] for row in rejects} == at_first_eps
    assert {row["reason"] for row in rejects} == {"semantic_duplicate"}
    assert all("cosine similarity" in row["detail"] and "(eps 0.02)" in row["detail"] for row in rejects)
    assert rebalance["rejected"] == {} and rebalance["rows_in"] == rebalance["rows_out"] == len(final)
    assert rebalance["dedup"] == {"applied": True, "eps": 0.3} and rebalance["filters"] == []
    assert rebalance["config"]["eps"] == 0.3
    assert shards["rows_out"] == len(final)

    # Another eps: rebalance and shards are recomputed, nothing upstream.
    smaller = run_rebalance(spark, run, EVERY_SAMPLE, eps=0.02)
    assert not smaller["skipped"] and smaller["dedup"]["eps"] == 0.02
    assert run_validate(spark, run, LIMITS, max_distance=6)["skipped"]
    assert run_embed(spark, run, EmbedConfig(batch_size=16))["skipped"]
    assert run_dedup(spark, run, DedupConfig(eps=(0.02, 0.3), clusters=2, seed=0))["skipped"]
    assert not run_write_shards(spark, run, run / "shards", samples_per_shard=16)["skipped"]
    assert len(uids(STAGES["rebalance"].path(run))) >= len(final)  # a smaller eps removes no more

    # An eps the dedup stage did not compute is a clear error; a dedup newer than rebalance blocks the shards.
    with pytest.raises(UserInputError, match=r"--eps 0.05 is not one of the dedup stage's eps \(0.02, 0.3\)"):
        run_rebalance(spark, run, EVERY_SAMPLE, eps=0.05)
    run_dedup(spark, run, DedupConfig(eps=(0.05,), clusters=2, seed=0))
    with pytest.raises(UserInputError, match=r"dedup changed after rebalance ran; rerun jobs/rebalance.py"):
        run_write_shards(spark, run, run / "shards", samples_per_shard=16)
    assert run_rebalance(spark, run, EVERY_SAMPLE)["dedup"]["eps"] == 0.05  # its only eps by default


def test_a_run_without_dedup_is_balanced_as_before_and_says_so(spark, embedded_run):
    rebalance = run_rebalance(spark, embedded_run, EVERY_SAMPLE)
    assert rebalance["dedup"] == {"applied": False, "eps": None} and "eps" not in rebalance["config"]
    assert set(rebalance["inputs"]) == {"selection", "validate"}
    assert uids(STAGES["rebalance"].path(embedded_run)) == uids(STAGES["validate"].path(embedded_run), "kept")
    with pytest.raises(UserInputError, match="--eps needs a dedup stage; run jobs/dedup.py first"):
        run_rebalance(spark, embedded_run, EVERY_SAMPLE, eps=0.05)


def test_eps_auto_keeps_a_poor_embedder_from_wrecking_the_set(spark, embedded_run):
    """The untrained tiny model's embeddings are nearly all alike: --eps auto must not let it merge distinct
    photos, whatever eps it settles on."""
    dedup = run_dedup(spark, embedded_run, DedupConfig(clusters=2))
    chosen = dedup["auto"]["chosen"]
    if chosen is not None:
        row = next(row for row in dedup["separation"] if row["eps"] == chosen)
        assert row["false_merge_rate"] < 0.01
    assert dedup["rows_out"] >= 0.9 * dedup["rows_in"]
    rebalance = run_rebalance(spark, embedded_run, EVERY_SAMPLE)
    assert rebalance["dedup"]["eps"] == chosen and rebalance["rows_in"] == dedup["rows_out"]
