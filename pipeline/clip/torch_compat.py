"""Let `import torchvision` (and so `import open_clip`) work on a CPU-only torch.

The torchvision wheel that matches torch 2.13 here is a CUDA build: on a CPU torch its native extension
cannot load, and importing torchvision then fails on `operator torchvision::nms does not exist`, raised
while it registers fake kernels for ops the extension should have defined. Declaring those op schemas
first is enough for everything this project uses (transforms, open_clip models). Where the extension
loads (GPU machines), it is loaded here and nothing else is done.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# The ops torchvision registers fake kernels for unconditionally (torchvision/_meta_registrations.py).
_SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_declared = []  # keeps the Library alive: dropping it would drop the schemas


def _native_extension_loads(torch) -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision: nothing to prepare
    for library in Path(spec.submodule_search_locations[0]).glob("_C*.so"):
        try:
            torch.ops.load_library(str(library))
            return True
        except OSError:
            return False
    return False


def prepare_torchvision() -> None:
    """Call before the first `import torchvision` / `import open_clip`; safe to call again."""
    if "torchvision" in sys.modules or _declared:
        return
    import torch

    if _native_extension_loads(torch):
        return
    library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        library.define(schema)
    _declared.append(library)
