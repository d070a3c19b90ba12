"""The trainer's data streams and checkpoints, directly (no model): which stream reads which shards, a
resumable position that replays exactly what an uninterrupted run would see, counted skips, atomic
checkpoints and clear errors for files that are not ours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.clip.training.checkpoints import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint
from pipeline.clip.training.data import ShardStream, StreamPosition, expand_shards
from pipeline.errors import UserInputError
from tests.helpers import write_demo_shards


def pixels(image) -> torch.Tensor:
    """The decoded image as a tensor: what the stream hands on is the point here, not open_clip's transform."""
    return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.uint8).copy())


def captions(texts: list[str]) -> list[str]:
    return list(texts)


def stream(shards: list[str], **settings) -> ShardStream:
    defaults = dict(batch_size=8, seed=3, shuffle_buffer=16)
    return ShardStream(shards, pixels, captions, **{**defaults, **settings})


def take(batches, count: int) -> list:
    return [next(batches) for _ in range(count)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[str]:
    return write_demo_shards(tmp_path_factory.mktemp("shards"), 96, 24)


def test_an_epoch_reads_every_sample_once_split_over_streams(shards):
    reader = stream(shards, workers=2, shuffle_buffer=0)
    per_stream = {}
    for stream_id in reader.stream_ids():
        batches = reader._batches(stream_id)
        per_stream[stream_id] = [text for batch in take(batches, 6) for text in batch[1]]  # 48 samples each
    assert set(per_stream) == {0, 1}
    assert len(per_stream[0]) == len(per_stream[1]) == 48
    seen = per_stream[0] + per_stream[1]
    assert len(seen) == 96 and all(text.startswith("a photo of a ") for text in seen)


def test_a_resumed_stream_continues_exactly_where_the_checkpoint_stood(shards):
    straight = take(stream(shards)._batches(0), 20)  # 160 samples: into the second epoch
    _, _, info = straight[6]
    resumed = take(stream(shards, positions={0: StreamPosition(info.position.epoch, info.position.taken)})
                   ._batches(0), 13)
    for (images, texts, _), (images_again, texts_again, _) in zip(straight[7:], resumed):
        assert texts == texts_again and torch.equal(images, images_again)
    assert straight[-1][2].position.epoch == 1  # the position crossed an epoch boundary


def test_the_shuffle_is_seeded(shards):
    def order(seed: int) -> list[str]:
        return [text for batch in take(stream(shards, seed=seed)._batches(0), 4) for text in batch[1]]

    assert order(1) == order(1) and order(1) != order(2)


def test_unusable_samples_are_skipped_and_counted(tmp_path):
    shards = write_demo_shards(tmp_path, 40, 40, damaged={2: "image", 5: "caption", 9: "image"})
    batches = take(stream(shards, batch_size=37, shuffle_buffer=0)._batches(0), 1)
    images, texts, info = batches[0]
    assert len(texts) == 37 and images.shape[0] == 37
    assert info.skipped == {"undecodable_image": 2, "missing_caption": 1}


def test_online_balance_draws_each_sample_by_its_keep_prob(tmp_path):
    shards = write_demo_shards(tmp_path, 200, 200)  # every keep_prob is 0.5
    _, texts, info = take(stream(shards, batch_size=50, shuffle_buffer=0, online_balance=True)._batches(0), 1)[0]
    drawn_out = info.skipped["balanced_out"]
    assert len(texts) == 50 and 20 <= drawn_out <= 90  # about as many as kept; a fixed seed makes it exact
    again = take(stream(shards, batch_size=50, shuffle_buffer=0, online_balance=True)._batches(0), 1)[0]
    assert again[2].skipped == info.skipped and again[1] == texts


def test_too_few_shards_or_samples_are_clear_errors(shards, tmp_path):
    with pytest.raises(UserInputError, match="4 shards cannot feed 1 ranks x 5 loader workers"):
        stream(shards, workers=5)
    small = write_demo_shards(tmp_path, 5, 5)
    with pytest.raises(UserInputError, match="fewer than --batch-size 8 usable samples"):
        next(stream(small)._batches(0))


def test_shards_are_found_in_folders_brace_patterns_and_globs(shards, tmp_path):
    folder = str(Path(shards[0]).parent)
    assert expand_shards([folder]) == shards
    assert expand_shards([folder + "/{00000..00001}.tar"]) == shards[:2]
    assert expand_shards([folder + "/*.tar"]) == shards
    with pytest.raises(UserInputError, match="00004.tar: shard not found"):
        expand_shards([folder + "/{00003..00004}.tar"])
    with pytest.raises(UserInputError, match="no .tar shards in this folder"):
        expand_shards([str(tmp_path)])


def test_checkpoints_are_written_whole_and_the_latest_is_the_highest_step(tmp_path):
    state = {"step": 7, "state_dict": {"w": torch.ones(2)}, "optimizer": {}, "scheduler": {}, "config": {"seed": 0}}
    for step in (5, 10, 7):
        save_checkpoint(tmp_path, step, {**state, "step": step})
    checkpoint_path(tmp_path, 20).with_name("step-00000020.pt.partial").write_bytes(b"half")  # a killed write
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 10)
    loaded = load_checkpoint(latest_checkpoint(tmp_path))
    assert loaded["step"] == 10 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))
    assert not list(tmp_path.glob("*.partial.*"))
    assert latest_checkpoint(tmp_path / "none") is None


def test_files_that_are_not_our_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(UserInputError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "damaged.pt").write_bytes(b"not a zip")
    with pytest.raises(UserInputError, match="damaged.pt: not a loadable checkpoint"):
        load_checkpoint(tmp_path / "damaged.pt")
    torch.save({"step": 1, "weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(UserInputError, match=r"foreign.pt: not a checkpoint of pipeline.train \(missing "):
        load_checkpoint(tmp_path / "foreign.pt")
