"""open_clip embeddings of images and captions, batched, on the GPU when there is one.

Models come from pipeline.clip.models: any open_clip name with its pretrained tag, a checkpoint of the
bundled trainer, or the project's tiny configs (e.g. `metacurate-tiny`, 32 px, about 7M parameters,
which run on CPU in tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pipeline.clip.models import load_model


@dataclass(frozen=True)
class EmbedConfig:
    """Which open_clip model embeds: a name, and a pretrained tag or a trainer checkpoint."""

    model: str = "metacurate-tiny"
    pretrained: str | None = None
    checkpoint: str | None = None
    batch_size: int = 256


@dataclass
class Embedder:
    name: str
    model: Any
    preprocess: Any
    tokenizer: Any
    device: str
    dim: int


def load_embedder(name: str | None, pretrained: str | None = None, checkpoint: str | None = None,
                  device: str | None = None, seed: int = 0) -> Embedder:
    """An open_clip model ready to embed (see pipeline.clip.models.load_model for the names it accepts)."""
    loaded = load_model(name, pretrained, checkpoint, device, seed)
    loaded.model.eval()
    return as_embedder(loaded)


def image_embedder(config: EmbedConfig):
    """A stage's model as a function of PIL images to float32 unit vectors (loaded where it is called: the
    driver, for a few thousand reference images)."""
    embedder = load_embedder(config.model, config.pretrained, config.checkpoint)
    return lambda images: embed_images(embedder, images, config.batch_size).astype(np.float32)


def as_embedder(loaded) -> Embedder:
    """An Embedder over a model already loaded (the trainer evaluates its own model while training)."""
    model = loaded.model
    dim = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else int(model.visual.output_dim)
    return Embedder(loaded.name, model, loaded.preprocess, loaded.tokenizer, loaded.device, dim)


def _autocast(device: str):
    """bf16/fp16 autocast on CUDA ("cuda" or "cuda:N"), none on CPU."""
    import torch

    return torch.autocast(device.split(":")[0], enabled=device.startswith("cuda"))


def _unit_float16(features) -> np.ndarray:
    features = features / features.norm(dim=-1, keepdim=True)
    return features.float().cpu().numpy().astype(np.float16)


def embed_images(embedder: Embedder, images: Sequence, batch_size: int = 256) -> np.ndarray:
    """Unit-norm float16 image embeddings, one row per PIL image."""
    import torch

    rows = [np.zeros((0, embedder.dim), np.float16)]
    with torch.inference_mode(), _autocast(embedder.device):
        for start in range(0, len(images), batch_size):
            batch = torch.stack([embedder.preprocess(image) for image in images[start:start + batch_size]])
            rows.append(_unit_float16(embedder.model.encode_image(batch.to(embedder.device))))
    return np.concatenate(rows)


@dataclass
class EmbedTiming:
    """Where an embedding pass spent its time: waiting for decoded batches, or computing."""

    images: int = 0
    seconds: float = 0.0
    waiting: float = 0.0  # blocked on the loader for the next batch

    @property
    def wait_share(self) -> float:
        return self.waiting / self.seconds if self.seconds else 0.0


def default_loaders(device: str) -> int:
    """Loader threads: on a GPU, all cores but two (the model's launch thread and the rest of the process); on
    the CPU one, which overlaps decoding with the model without taking cores from torch's own threads
    (measured: more are slower on 2 cores)."""
    return max(1, (os.cpu_count() or 2) - 2) if device.startswith("cuda") else 1


def embed_encoded(embedder: Embedder, blobs: Sequence[bytes], batch_size: int = 256, loaders: int | None = None,
                  ahead: int = 2, timing: EmbedTiming | None = None) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Unit-norm float16 embeddings of encoded images. `loaders` threads (default_loaders) decode and
    preprocess a batch each (PIL releases the GIL while it decodes and resizes), at most `loaders + ahead`
    batches before the model needs them, so a GPU is not left waiting and memory holds only those batches.
    Returns the embeddings, the positions of the images they belong to, and the error of each image that could
    not be decoded, by position."""
    import io
    import itertools
    import time
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    import torch
    from PIL import Image

    def load(start: int) -> tuple[list, list, dict]:
        """One batch decoded and preprocessed: (positions, tensors, errors by position)."""
        positions, tensors, failed = [], [], {}
        for position in range(start, min(start + batch_size, len(blobs))):
            try:
                tensors.append(embedder.preprocess(Image.open(io.BytesIO(blobs[position])).convert("RGB")))
                positions.append(position)
            except Exception as err:  # noqa: BLE001 - any decoding failure is that image's, reported by position
                failed[position] = f"{type(err).__name__}: {err}"
        return positions, tensors, failed

    timing = timing if timing is not None else EmbedTiming()
    loaders = loaders or default_loaders(embedder.device)
    rows, kept, errors = [np.zeros((0, embedder.dim), np.float16)], [], {}
    starts = iter(range(0, len(blobs), batch_size))
    started = time.perf_counter()
    with ThreadPoolExecutor(loaders) as pool, torch.inference_mode(), _autocast(embedder.device):
        pending = deque(pool.submit(load, start) for start in itertools.islice(starts, loaders + ahead))
        while pending:
            waited = time.perf_counter()
            positions, tensors, failed = pending.popleft().result()
            timing.waiting += time.perf_counter() - waited
            for start in itertools.islice(starts, 1):
                pending.append(pool.submit(load, start))
            errors.update(failed)
            if tensors:
                batch = torch.stack(tensors).to(embedder.device, non_blocking=True)
                rows.append(_unit_float16(embedder.model.encode_image(batch)))
                kept.extend(positions)
    timing.images += len(kept)
    timing.seconds += time.perf_counter() - started
    return np.concatenate(rows), kept, errors


def embed_texts(embedder: Embedder, texts: Sequence[str], batch_size: int = 1024) -> np.ndarray:
    """Unit-norm float16 caption embeddings."""
    import torch

    rows = [np.zeros((0, embedder.dim), np.float16)]
    with torch.inference_mode(), _autocast(embedder.device):
        for start in range(0, len(texts), batch_size):
            tokens = embedder.tokenizer(list(texts[start:start + batch_size])).to(embedder.device)
            rows.append(_unit_float16(embedder.model.encode_text(tokens)))
    return np.concatenate(rows)
