"""open_clip models by name: any open_clip model (with its pretrained tag where the machine can load it),
the project's tiny configs (pipeline/clip/model_configs), and checkpoints of the bundled trainer.

One place creates models, so embedding, training and evaluation accept the same names and fail the same way.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from pipeline.clip.torch_compat import prepare_torchvision
from pipeline.errors import UserInputError


def _register_project_configs() -> None:
    """Make the bundled configs known to open_clip, also when the package runs from a zip (executors)."""
    import open_clip

    with tempfile.TemporaryDirectory(prefix="metacurate-models-") as folder:
        for config in files("pipeline.clip").joinpath("model_configs").iterdir():
            if config.name.endswith(".json"):
                (Path(folder) / config.name).write_bytes(config.read_bytes())
        open_clip.add_model_config(folder)  # reads the files now


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class LoadedModel:
    name: str
    model: Any
    preprocess_train: Any  # open_clip's training augmentation
    preprocess: Any  # its evaluation transform
    tokenizer: Any
    device: str


def checkpoint_model_name(checkpoint: str) -> str:
    """The model name a checkpoint of the bundled trainer was trained with."""
    from pipeline.clip.training.checkpoints import load_checkpoint

    return load_checkpoint(Path(checkpoint))["config"]["model"]


def load_model(name: str | None, pretrained: str | None = None, checkpoint: str | None = None,
               device: str | None = None, seed: int = 0) -> LoadedModel:
    """An open_clip model with its transforms and tokenizer; unknown names and unloadable weights are clear
    errors. Without a name, a checkpoint of the bundled trainer names its model."""
    prepare_torchvision()
    import open_clip
    import torch

    _register_project_configs()
    if name is None:
        if checkpoint is None:
            raise UserInputError("give a model name (--model) or a checkpoint (--checkpoint)")
        name = checkpoint_model_name(checkpoint)
    if name not in open_clip.list_models():
        raise UserInputError(f"unknown open_clip model {name!r} (see open_clip.list_models())")
    device = device or torch_device()
    torch.manual_seed(seed)  # a model without weights is initialised the same way every time
    try:
        model, preprocess_train, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=device)
    except (RuntimeError, OSError, ValueError) as err:
        raise UserInputError(f"cannot load {name} with pretrained={pretrained!r}: {err}") from None
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise UserInputError(f"{checkpoint}: checkpoint not found")
        try:
            open_clip.load_checkpoint(model, checkpoint, device=device, weights_only=True)
        except Exception as err:  # noqa: BLE001 - a wrong or damaged file is the user's to fix
            raise UserInputError(f"{checkpoint}: cannot load into {name} ({type(err).__name__}: "
                                 f"{str(err).splitlines()[0][:300]})") from None
    return LoadedModel(name, model, preprocess_train, preprocess, open_clip.get_tokenizer(name), device)
