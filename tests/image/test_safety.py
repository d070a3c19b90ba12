"""The NSFW score: NudeNet's bundled detector on real photos (none of which is unsafe), and how its detections
become a score."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from pipeline.image.safety import NSFW_THRESHOLD, load_detector, nsfw_score
from tests.helpers import SHARED

pytestmark = pytest.mark.real_data


class Detections:
    """Stands in for the detector's output only: what nsfw_score does with the detections it is given."""

    def __init__(self, found):
        self.found = found

    def detect(self, data):
        return self.found


def test_only_exposed_anatomy_counts_towards_the_score():
    harmless = [{"class": "FEET_COVERED", "score": 0.9}, {"class": "FACE_FEMALE", "score": 0.95}]
    assert nsfw_score(Detections(harmless), b"") == 0.0
    exposed = harmless + [{"class": "BUTTOCKS_EXPOSED", "score": 0.4}, {"class": "FEMALE_BREAST_EXPOSED", "score": 0.7}]
    assert nsfw_score(Detections(exposed), b"") == pytest.approx(0.7)


def ukbench_photos() -> list[Path]:
    folder = SHARED / "dedup" / "ukbench"
    return sorted(path for sub in ("base", "variants", "formats") for path in (folder / sub).iterdir()
                  if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tiff"))


def test_real_photos_are_not_flagged():
    detector = load_detector()
    photos = ukbench_photos()
    scores = {f"{path.parent.name}/{path.name}": nsfw_score(detector, path.read_bytes()) for path in photos}
    with tarfile.open(SHARED / "images" / "cifar10_test.tar.gz") as archive:
        members = [member for member in archive if member.isfile()][:200]
        scores.update({member.name: nsfw_score(detector, archive.extractfile(member).read()) for member in members})
    assert len(scores) == len(photos) + 200 and all(0.0 <= score <= 1.0 for score in scores.values())
    flagged = sorted(name for name, score in scores.items() if score >= NSFW_THRESHOLD)
    assert flagged == []
