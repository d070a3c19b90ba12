"""An NSFW score per image, from a detector that ships its model inside a registry package and runs offline on
the CPU: NudeNet's 320 px ONNX detector (`pip install -e '.[safety]'`; nudenet is AGPL-3.0 licensed).

The score is the detector's highest confidence for an exposed-anatomy class; covered classes, faces and feet do
not count. An image at or above the threshold is unsafe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserInputError

NSFW_THRESHOLD = 0.5
EXPOSED = frozenset({"FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
                     "BUTTOCKS_EXPOSED", "ANUS_EXPOSED"})


@dataclass(frozen=True)
class SafetyConfig:
    nsfw_threshold: float = NSFW_THRESHOLD


def load_detector(threads: int = 1):
    """NudeNet's detector on `threads` CPU threads (one per Spark task: Spark runs a task per core), or a clear
    error naming the extra that installs it."""
    try:
        import nudenet
        import onnxruntime
    except ImportError:
        raise UserInputError("the NSFW filter needs nudenet (AGPL-3.0): pip install -e '.[safety]'") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    model = Path(nudenet.__file__).parent / "320n.onnx"  # the model the wheel ships
    detector = nudenet.NudeDetector(model_path=str(model))
    detector.onnx_session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    return detector


def nsfw_score(detector, data: bytes) -> float:
    """The highest confidence of an exposed-anatomy detection in the encoded image (0 when there is none)."""
    return max((float(found["score"]) for found in detector.detect(data) if found["class"] in EXPOSED), default=0.0)
