"""open_clip embeddings of images and captions, batched, on the GPU when there is one.

Any open_clip model name works, with its pretrained tag where the machine can load it, or a checkpoint
of the bundled trainer. The project's own tiny configs (pipeline/model_configs, e.g. `metacurate-tiny`,
32 px, about 7M parameters) are registered too: they run on CPU in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.errors import UserInputError
from pipeline.torch_compat import prepare_torchvision



def _register_project_configs() -> None:
    """Make the bundled configs known to open_clip, also when the package runs from a zip (executors)."""
    import tempfile
    from importlib.resources import files

    import open_clip

    with tempfile.TemporaryDirectory(prefix="metacurate-models-") as folder:
        for config in files("pipeline").joinpath("model_configs").iterdir():
            if config.name.endswith(".json"):
                (Path(folder) / config.name).write_bytes(config.read_bytes())
        open_clip.add_model_config(folder)  # reads the files now


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class Embedder:
    name: str
    model: Any
    preprocess: Any
    tokenizer: Any
    device: str
    dim: int


def load_embedder(name: str, pretrained: str | None = None, checkpoint: str | None = None,
                  device: str | None = None, seed: int = 0) -> Embedder:
    """An open_clip model ready to embed; unknown names and unloadable weights are clear errors."""
    prepare_torchvision()
    import open_clip
    import torch

    _register_project_configs()
    if name not in open_clip.list_models():
        raise UserInputError(f"unknown open_clip model {name!r} (see open_clip.list_models())")
    device = device or torch_device()
    torch.manual_seed(seed)  # a model without weights is initialised the same way every time
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device)
    except (RuntimeError, OSError, ValueError) as err:
        raise UserInputError(f"cannot load {name} with pretrained={pretrained!r}: {err}") from None
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise UserInputError(f"{checkpoint}: checkpoint not found")
        open_clip.load_checkpoint(model, checkpoint, device=device)
    model.eval()
    return Embedder(name, model, preprocess, open_clip.get_tokenizer(name), device,
                    int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else
                    int(model.visual.output_dim))


def _unit_float16(features) -> np.ndarray:
    features = features / features.norm(dim=-1, keepdim=True)
    return features.float().cpu().numpy().astype(np.float16)


def embed_images(embedder: Embedder, images: Sequence, batch_size: int = 256) -> np.ndarray:
    """Unit-norm float16 image embeddings, one row per PIL image."""
    import torch

    rows = [np.zeros((0, embedder.dim), np.float16)]
    with torch.inference_mode(), torch.autocast(embedder.device, enabled=embedder.device == "cuda"):
        for start in range(0, len(images), batch_size):
            batch = torch.stack([embedder.preprocess(image) for image in images[start:start + batch_size]])
            rows.append(_unit_float16(embedder.model.encode_image(batch.to(embedder.device))))
    return np.concatenate(rows)


def embed_texts(embedder: Embedder, texts: Sequence[str], batch_size: int = 1024) -> np.ndarray:
    """Unit-norm float16 caption embeddings."""
    import torch

    rows = [np.zeros((0, embedder.dim), np.float16)]
    with torch.inference_mode(), torch.autocast(embedder.device, enabled=embedder.device == "cuda"):
        for start in range(0, len(texts), batch_size):
            tokens = embedder.tokenizer(list(texts[start:start + batch_size])).to(embedder.device)
            rows.append(_unit_float16(embedder.model.encode_text(tokens)))
    return np.concatenate(rows)
