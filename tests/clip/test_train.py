"""The bundled trainer and evaluator: a tiny model learns on the pipeline's and img2dataset's shards, resumes
exactly after a kill, and meets bad input with clear errors or counted skips."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.clip.evaluate import evaluate
from pipeline.clip.training.checkpoints import latest_checkpoint
from pipeline.clip.training.loop import train
from pipeline.clip.training.options import TrainConfig, ZeroShotEval
from pipeline.errors import UserInputError
from pipeline.run.stages import STAGES
from pipeline.semantic.embedding import embed_images, load_embedder
from tests.helpers import CIFAR_TEST_PER_CLASS, LEARNS, REPO, SHARED, open_when_peer_opens, write_demo_shards

CLASSES = REPO / "data" / "cifar10_classes.txt"
TEST_IMAGES = SHARED / "images" / "cifar10_test.tar.gz"
ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
# The contrastive loss of a model that has learned nothing: ln(batch size), 3.47 for 32
CHANCE_LOSS = math.log(LEARNS["batch_size"])

pytestmark = pytest.mark.slow


def log_losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]


def assert_learned(out: Path, summary: dict, test_images: Path) -> dict:
    losses = log_losses(out)
    assert summary["steps"] == 300 and summary["samples_seen"] == 9600
    # the last 100 steps' logged losses (one batch each, so noisy: 2.0-2.5 seen on img2dataset's shards) against
    # chance, not one batch against another (the order of img2dataset's samples, so the batches, varies by run)
    print(f"logged losses of {out.name}: {losses}")
    assert np.mean(losses[-4:]) < CHANCE_LOSS - 0.8, losses
    results = evaluate(summary["checkpoint"], classes=CLASSES, images=test_images)["zero_shot"]
    print(f"zero-shot top-1 after 9,600 samples of {out.name}: {results['top1']:.3f}")
    assert results["images"] == 10 * CIFAR_TEST_PER_CLASS and results["top1"] > 0.18, results  # chance is 0.10
    return results


@pytest.mark.real_data
def test_tiny_model_learns_on_the_pipelines_shards_and_its_checkpoint_embeds(demo_run, cifar_test_subset,
                                                                            tmp_path):
    shards = demo_run[0] / "shards"
    summary = train(TrainConfig(shards=(str(shards),), **LEARNS), tmp_path / "train",
                    zero_shot=ZeroShotEval(CLASSES, cifar_test_subset, every=150))
    zero_shot = assert_learned(tmp_path / "train", summary, cifar_test_subset)
    log = tmp_path / "train" / STAGES["train"].files["zero_shot_log"]
    measured = [json.loads(line) for line in log.read_text().splitlines()]
    assert [row["step"] for row in measured] == [150, 300]  # while training, and the last equals the checkpoint's
    assert measured[-1]["top1"] == pytest.approx(zero_shot["top1"], abs=1e-3)
    print(f"zero-shot top-1 after 9,600 samples of the demo shards: {zero_shot['top1']:.3f}")
    retrieval = evaluate(summary["checkpoint"], shards=[str(shards)])["retrieval"]
    assert retrieval["pairs"] > 400 and retrieval["text_to_image_R@10"] > 10 / retrieval["pairs"]
    trained = load_embedder(None, checkpoint=summary["checkpoint"], device="cpu")  # the embed stage's loader
    untrained = load_embedder("metacurate-tiny", device="cpu")
    with tarfile.open(REPO / "data" / "demo_images.tar") as archive:
        from PIL import Image

        images = [Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB")
                  for member in archive.getmembers()[:50] if member.isfile()]
    assert not np.allclose(embed_images(trained, images), embed_images(untrained, images))
    assert train(TrainConfig(shards=(str(shards),), **LEARNS), tmp_path / "train") == summary  # finished: skipped


@pytest.mark.real_data
def test_tiny_model_learns_on_img2dataset_shards(cifar_checkpoint, cifar_test_subset):
    train_dir, summary, tars = cifar_checkpoint
    assert len(tars) == 4  # img2dataset's tars of the 600 photos, 150 a shard
    assert summary["skipped"] == {}
    assert_learned(train_dir, summary, cifar_test_subset)


RESUME = ["--samples", "640", "--batch-size", "16", "--workers", "0", "--checkpoint-every", "5", "--log-every", "5",
          "--warmup", "5"]


def run_trainer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.train", *args], env=ENV, capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def test_a_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(tmp_path):
    shards = write_demo_shards(tmp_path, 200, 50)
    straight = run_trainer("--shards", *shards, "--out", str(tmp_path / "straight"), *RESUME)
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed = tmp_path / "killed"
    # Step 20's checkpoint is written to a named pipe: the trainer blocks there, after step 15's is complete.
    hold = killed / "checkpoints" / "step-00000020.pt.partial"
    hold.parent.mkdir(parents=True)
    os.mkfifo(hold)
    process = subprocess.Popen([sys.executable, "-m", "pipeline.train", "--shards", *shards, "--out", str(killed),
                                *RESUME], env=ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open_when_peer_opens(hold, "rb", process):
        process.send_signal(signal.SIGKILL)
        process.wait()
    hold.unlink()
    stopped_at = torch.load(latest_checkpoint(killed / "checkpoints"), weights_only=True)["step"]
    assert stopped_at == 15 and not (killed / STAGES["train"].files["summary"]).exists()
    again = run_trainer("--shards", *shards, "--out", str(killed), *RESUME)
    assert again.returncode != 0 and "--resume latest" in again.stderr  # never silently restarted
    resumed = run_trainer("--shards", *shards, "--out", str(killed), *RESUME, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((killed / STAGES["train"].files["summary"]).read_text())["steps"] == 40
    final = {name: torch.load(folder / "checkpoints" / "step-00000040.pt", weights_only=True)
             for name, folder in (("straight", tmp_path / "straight"), ("resumed", killed))}
    for key, tensor in final["straight"]["state_dict"].items():
        assert torch.allclose(tensor, final["resumed"]["state_dict"][key], atol=1e-6), key
    assert final["straight"]["data_position"] == final["resumed"]["data_position"]
    steps = [json.loads(line)["step"] for line in (killed / "log.jsonl").read_text().splitlines()]
    assert steps[-1] == 40 and sorted(set(steps)) == list(range(5, 45, 5))


def test_bad_samples_are_skipped_and_counted_and_online_balance_draws_by_keep_prob(tmp_path):
    shards = write_demo_shards(tmp_path, 200, 100, damaged={3: "image", 110: "caption", 111: "image"})
    config = TrainConfig(shards=tuple(shards), samples=64, batch_size=16, workers=2, warmup=1, log_every=1,
                         shuffle_buffer=0)  # in shard order, so the damaged samples are among the first read
    summary = train(config, tmp_path / "plain")
    assert summary["steps"] == 4 and summary["samples_seen"] == 64
    assert summary["skipped"] == {"undecodable_image": 2, "missing_caption": 1}  # both streams got their bad ones
    balanced = train(TrainConfig(**{**config.__dict__, "online_balance": True}), tmp_path / "balanced")
    drawn_out = balanced["skipped"]["balanced_out"]
    assert 40 <= drawn_out <= 100  # keep_prob 0.5: about as many drawn out as kept (64 kept + partial batches)


@pytest.mark.real_data
def test_bad_inputs_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_trainer("--shards", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.strip().endswith("empty: no .tar shards in this folder")
    shards = write_demo_shards(tmp_path, 20, 20)
    with pytest.raises(UserInputError, match="fewer than --batch-size 32 usable samples"):
        train(TrainConfig(shards=tuple(shards), samples=64, batch_size=32, workers=0), tmp_path / "small")
    with pytest.raises(UserInputError, match="1 shards cannot feed 1 ranks x 2 loader workers"):
        train(TrainConfig(shards=tuple(shards), samples=64, batch_size=8, workers=2), tmp_path / "workers")
    result = run_trainer("--shards", *shards, "--out", str(tmp_path / "out"), "--resume", str(tmp_path / "nope.pt"))
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path / 'nope.pt'}: checkpoint not found"
    pickled = tmp_path / "pickled.pt"
    torch.save({"step": 1, "config": {"model": "metacurate-tiny"}, "payload": Path("/")}, pickled)
    with pytest.raises(UserInputError, match="not a loadable checkpoint"):  # weights_only refuses arbitrary objects
        evaluate(str(pickled), classes=CLASSES, images=TEST_IMAGES)
    with pytest.raises(UserInputError, match="checkpoint not found"):
        evaluate(str(tmp_path / "missing.pt"), classes=CLASSES, images=TEST_IMAGES)


def test_torchrun_trains_on_two_cpu_ranks_with_the_loss_over_both(demo_run, tmp_path):
    """DDP as on several GPUs, here with gloo: both ranks step together and rank 0 writes the run."""
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--nproc_per_node", "2", "-m", "pipeline.train", "--shards", str(demo_run[0] / "shards"),
               "--out", str(tmp_path / "ddp"), "--samples", "1280", "--batch-size", "32", "--workers", "1",
               "--log-every", "5"]
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("trained 20 steps, 1,280 samples") == 1
    summary = json.loads((tmp_path / "ddp" / STAGES["train"].files["summary"]).read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 20 and summary["samples_seen"] == 1280
    assert log_losses(tmp_path / "ddp")[0] == pytest.approx(np.log(64), abs=0.3)  # the loss sees both ranks' 64
    state = torch.load(summary["checkpoint"], weights_only=True)
    assert state["step"] == 20
