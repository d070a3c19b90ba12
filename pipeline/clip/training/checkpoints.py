"""Checkpoints: plain tensors, numbers and strings only, so they load with torch.load(weights_only=True).

A checkpoint is written to a temporary name and renamed, so a killed run never leaves a half-written file
under a checkpoint's name; `latest` is simply the highest step found. The model weights sit under
`state_dict`, the key open_clip.load_checkpoint reads, so `jobs/embed.py --checkpoint` takes these files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from pipeline.errors import UserInputError

_NAME = re.compile(r"step-(\d{8})\.pt")


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.pt"


def save_checkpoint(folder: Path, step: int, state: dict) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(folder, step)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)
    return path


def latest_checkpoint(folder: Path) -> Path | None:
    found = [(int(match.group(1)), path) for path in Path(folder).glob("step-*.pt")
             if (match := _NAME.fullmatch(path.name))]
    return max(found)[1] if found else None


def load_checkpoint(path: Path) -> dict:
    """A checkpoint of this trainer; anything else (missing, damaged, arbitrary pickles) is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged or foreign file is the user's to fix
        raise UserInputError(f"{path}: not a loadable checkpoint ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:200]})") from None
    missing = {"step", "state_dict", "optimizer", "scheduler", "config"} - set(state)
    if missing:
        raise UserInputError(f"{path}: not a checkpoint of pipeline.train (missing {sorted(missing)})")
    return state
