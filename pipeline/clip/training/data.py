"""Training batches from webdataset shards (this pipeline's or img2dataset's), with a resumable position.

Order: every epoch permutes the shards with a seeded draw; shard i of that order goes to data stream
i mod (ranks x loader workers); each stream reads its shards in order through a seeded shuffle buffer
(shards are often sorted by something, e.g. class or url) and batches its own samples. A batch carries
where its stream stands (epoch, raw samples taken from the buffer), so a checkpoint can record every
stream's position and a resumed run replays the same draws and skips exactly what was consumed, without
decoding it. Samples that cannot be used
(undecodable image, no caption) are skipped and counted by reason; the batch is filled from the next ones.
With online balancing, each sample is kept with its stored keep probability, drawn per (seed, epoch, uid)
as MetaCLIP's online curation does.
"""

from __future__ import annotations

import glob
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from pipeline.errors import UserInputError
from pipeline.hashing import pool_uid, uid_words, uniform_draws

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def expand_shards(specs: Sequence[str]) -> list[str]:
    """Shard paths from directories (every .tar inside), brace patterns (`{00000..00009}.tar`) and globs."""
    from braceexpand import braceexpand

    paths: list[str] = []
    for spec in specs:
        if Path(spec).is_dir():
            found = sorted(str(path) for path in Path(spec).glob("*.tar"))
            if not found:
                raise UserInputError(f"{spec}: no .tar shards in this folder")
            paths.extend(found)
            continue
        for pattern in braceexpand(spec):
            matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            if not matches or not Path(matches[0]).is_file():
                raise UserInputError(f"{pattern}: shard not found")
            paths.extend(matches)
    if not paths:
        raise UserInputError("no shards given")
    return paths


@dataclass
class StreamPosition:
    """Where one data stream stands: its epoch and the raw samples it has taken in that epoch."""
    epoch: int = 0
    taken: int = 0


@dataclass
class BatchInfo:
    stream: int
    position: StreamPosition
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> samples skipped while filling this batch


class ShardStream(IterableDataset):
    """(images, tokens, BatchInfo) batches for one rank; each DataLoader worker is one data stream."""

    def __init__(self, shards: list[str], preprocess, tokenizer, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1, workers: int = 1, online_balance: bool = False,
                 positions: dict[int, StreamPosition] | None = None, shuffle_buffer: int = 1000):
        if len(shards) < world_size * workers:
            raise UserInputError(f"{len(shards)} shards cannot feed {world_size} ranks x {workers} loader workers; "
                                 f"use fewer workers or more shards")
        self.shards, self.preprocess, self.tokenizer = list(shards), preprocess, tokenizer
        self.batch_size, self.seed, self.rank = batch_size, seed, rank
        self.world_size, self.workers = world_size, workers
        self.online_balance, self.shuffle_buffer = online_balance, shuffle_buffer
        self.positions = positions or {}

    def stream_ids(self) -> list[int]:
        return [self.rank * self.workers + worker for worker in range(self.workers)]

    def __iter__(self) -> Iterator:
        info = get_worker_info()
        stream = self.rank * self.workers + (info.id if info else 0)
        return self._batches(stream)

    def _shards_of(self, stream: int, epoch: int) -> list[str]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.shards))
        return [self.shards[index] for index in order[stream::self.world_size * self.workers]]

    def _batches(self, stream: int) -> Iterator:
        position = self.positions.get(stream, StreamPosition())
        epoch, skip = position.epoch, position.taken
        while True:
            yielded = 0
            batch, skipped, taken = [], Counter(), 0
            draws = np.random.default_rng([self.seed, epoch, stream])
            for sample in _shuffled(_samples(self._shards_of(stream, epoch), skipped), self.shuffle_buffer, draws):
                taken += 1
                if taken <= skip:
                    continue
                decoded = self._decode(sample, epoch, skipped)
                if decoded is None:
                    continue
                batch.append(decoded)
                if len(batch) == self.batch_size:
                    yield self._collate(batch, BatchInfo(stream, StreamPosition(epoch, taken), dict(skipped)))
                    yielded += 1
                    batch, skipped = [], Counter()
            if not yielded and not skip:
                raise UserInputError(f"data stream {stream} found fewer than --batch-size {self.batch_size} usable "
                                     f"samples in its shards for a whole epoch ({taken} read, skipped {dict(skipped)})")
            epoch, skip = epoch + 1, 0  # a partial last batch is dropped: every step sees full batches

    def _decode(self, sample: dict, epoch: int, skipped: Counter):
        from PIL import Image

        key = sample.get("__key__", "?")
        image_key = next((ext for ext in IMAGE_EXTENSIONS if ext in sample), None)
        if image_key is None:
            skipped["missing_image"] += 1
            return None
        caption = sample.get("txt", b"").decode("utf-8", errors="replace").strip()
        if not caption:
            skipped["missing_caption"] += 1
            return None
        if self.online_balance and not self._drawn(sample, key, epoch, skipped):
            return None
        try:
            image = Image.open(io.BytesIO(sample[image_key]))
            image.load()
            image = image.convert("RGB")
        except Exception:  # noqa: BLE001 - any decoding failure skips the sample, counted
            skipped["undecodable_image"] += 1
            return None
        return self.preprocess(image), caption

    def _drawn(self, sample: dict, key: str, epoch: int, skipped: Counter) -> bool:
        try:
            metadata = json.loads(sample["json"])
            keep_prob, uid = float(metadata["keep_prob"]), pool_uid(str(metadata.get("uid", key)))
        except (KeyError, ValueError, TypeError):
            raise UserInputError(f"sample {key}: --online-balance needs keep_prob in every sample's .json "
                                 f"(shards from jobs/write_shards.py carry it)") from None
        high, low = uid_words([uid])
        if uniform_draws(self.seed, high, low, np.array([epoch]))[0] < keep_prob:
            return True
        skipped["balanced_out"] += 1
        return False

    def _collate(self, batch: list, info: BatchInfo):
        return torch.stack([image for image, _ in batch]), self.tokenizer([text for _, text in batch]), info


def _samples(shards: list[str], skipped: Counter) -> Iterator[dict]:
    """Samples of the shards in order; an unreadable rest of a shard is counted and the next shard read."""
    from webdataset.tariterators import tarfile_samples

    def handler(error: Exception) -> bool:
        skipped["unreadable_tar"] += 1
        return True

    return tarfile_samples(({"url": shard} for shard in shards), handler=handler)


def _shuffled(samples: Iterator[dict], size: int, draws: np.random.Generator) -> Iterator[dict]:
    """A seeded shuffle buffer: once `size` samples are held, each new one replaces a random held one,
    which is emitted; the rest leave in random order at the end. Size 0 keeps the shards' order."""
    if size <= 0:
        yield from samples
        return
    held: list[dict] = []
    for sample in samples:
        if len(held) < size:
            held.append(sample)
            continue
        index = int(draws.integers(size))
        held[index], sample = sample, held[index]
        yield sample
    for index in draws.permutation(len(held)):
        yield held[index]
