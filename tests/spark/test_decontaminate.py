"""Decontamination in the main line: copies of CIFAR-10 test images planted in a pool, exact and re-encoded,
are removed naming the test image they copy; the pool's own photos are kept; what it removed never reaches
the shards, and shards are refused over a rebalance that a newer decontamination outdated."""

from __future__ import annotations

import io
import json
import tarfile

import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.errors import UserInputError
from pipeline.experiments.image_server import SERVED_FROM, ImageServer
from pipeline.image.check import ImageLimits
from pipeline.image.contamination import DecontaminationConfig
from pipeline.image.download import DownloadOptions, run_download
from pipeline.run.directory import REJECTS
from pipeline.run.stages import STAGES
from pipeline.semantic.embedding import EmbedConfig
from pipeline.spark.curate import TextCurationConfig, curate_text
from pipeline.spark.decontaminate import run_decontaminate
from pipeline.spark.embed import run_embed
from pipeline.spark.rebalance import run_rebalance
from pipeline.spark.shards import run_write_shards
from pipeline.spark.validate import run_validate
from pipeline.text.balancing import BalanceConfig
from tests.helpers import SHARED

pytestmark = pytest.mark.real_data
TEST_TAR = SHARED / "images" / "cifar10_test.tar.gz"
EXACT = ("test/cat/0001.jpg", "test/ship/0002.jpg", "test/frog/0003.jpg")
RE_ENCODED = ("test/dog/0004.jpg", "test/truck/0005.jpg", "test/bird/0006.jpg")
BYTES_AS_SERVED = DownloadOptions(resize_mode="no", skip_reencode=True, processes_count=2, thread_count=8,
                                  allow_network=SERVED_FROM,
                                  timeout=5, number_sample_per_shard=16)
EVERY_SAMPLE = BalanceConfig(t=1000, seed=0)


def evaluation_tar(path, size: int = 1_000):
    """A slice of CIFAR-10's test tar, member names as they are, that holds the test images planted here."""
    with tarfile.open(TEST_TAR) as source, tarfile.open(path, "w") as target:
        members = [member for member in source if member.isfile()]
        wanted = set(EXACT + RE_ENCODED)
        chosen = [member for member in members if member.name in wanted]
        chosen += [member for member in members[:size] if member.name not in wanted]
        for member in chosen:
            target.addfile(member, source.extractfile(member))
    return path


def test_planted_test_images_are_removed_naming_the_test_file(spark, tmp_path, cifar_images):
    planted = {}
    eval_tar = evaluation_tar(tmp_path / "cifar10_test_slice.tar")
    with tarfile.open(TEST_TAR) as tar:
        for name in EXACT + RE_ENCODED:
            data = tar.extractfile(name).read()
            if name in RE_ENCODED:  # upscaled and recompressed, as a web copy would be
                buffer = io.BytesIO()
                Image.open(io.BytesIO(data)).resize((64, 64), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=70)
                data = buffer.getvalue()
            path = tmp_path / f"planted_{name.replace('/', '_')}"
            path.write_bytes(data)
            planted[path.name] = name
    served = {**cifar_images, **{name: tmp_path / name for name in planted}}
    labels = sorted({name.split("_")[-2] if name.startswith("planted") else name.split("_")[1] for name in served})
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text("\n".join(labels) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    with ImageServer(served) as server:
        pool = tmp_path / "pool.jsonl"
        pool.write_text("".join(json.dumps({"url": server.url("img", name), "caption": f"a photo of a {label}"}) + "\n"
                                for name in sorted(served) for label in labels if f"_{label}_" in name))
        curate_text(spark, TextCurationConfig(pool=str(pool), metadata=str(vocabulary), out=str(run),
                                              balance=EVERY_SAMPLE))
        run_download(run, BYTES_AS_SERVED)
    run_validate(spark, run, ImageLimits(min_side=0, max_aspect=3), max_distance=6)
    run_embed(spark, run, EmbedConfig(batch_size=16))
    manifest = run_decontaminate(spark, run, DecontaminationConfig(eval=(str(eval_tar),)))

    ingested = pq.read_table(run / "ingest", columns=["uid", "url"]).to_pylist()
    uid_of = {row["url"].rsplit("/", 1)[1]: row["uid"] for row in ingested}
    rejects = {row["uid"]: row for row in pq.read_table(STAGES["decontaminate"].path(run) / REJECTS).to_pylist()}
    assert set(rejects) == {uid_of[name] for name in planted}, "exactly the planted copies go"
    for served_name, test_name in planted.items():
        reject = rejects[uid_of[served_name]]
        assert reject["reason"] == "eval_duplicate" and reject["detail"].endswith(f"{eval_tar}:{test_name}")
        kind = "same sha256 as" if test_name in EXACT else "perceptual hash within"
        assert reject["detail"].startswith(kind)
    assert manifest["removed_by_match"] == {"exact": 3, "near": 3}
    assert manifest["eval_images"] == len(tarfile.open(eval_tar).getnames())
    assert manifest["rows_in"] == len(served) and manifest["rows_out"] == len(cifar_images)
    # The untrained tiny model puts every image near every other: its semantic test is skipped, and says why.
    assert manifest["semantic"]["applied"] is False and "does not separate images" in manifest["semantic"]["says"]

    rebalance = run_rebalance(spark, run, EVERY_SAMPLE)
    assert rebalance["filters"] == ["decontaminate"] and rebalance["rows_in"] == len(cifar_images)
    run_write_shards(spark, run, run / "shards", samples_per_shard=16)
    in_shards = {row["uid"] for row in pq.read_table(run / "shards" / STAGES["shards"].files["index"]).to_pylist()}
    assert in_shards == {uid_of[name] for name in cifar_images}

    # A decontamination newer than the rebalance blocks the shards until rebalance runs again.
    run_decontaminate(spark, run, DecontaminationConfig(eval=(str(eval_tar),), max_phash_distance=2))
    with pytest.raises(UserInputError, match="decontaminate changed after rebalance ran; rerun jobs/rebalance.py"):
        run_write_shards(spark, run, run / "shards", samples_per_shard=16)
