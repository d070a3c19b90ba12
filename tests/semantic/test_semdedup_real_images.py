"""SemDeDup on real images: of each photo and its edited copies one is kept, and distinct photos all stay.

The embeddings here are pixel-level features, not a CLIP model: no pretrained weights can be downloaded on
this machine, an untrained tiny model maps every image to nearly the same vector (all pairs above 0.99), and
a model trained for minutes on captions learns classes (two different ships come close), not copy invariance.
Edited copies share their pixels, so pixel features suffice to show what the dedup stage does with them:
a 32 px blurred thumbnail, averaged with its mirror image (flip invariance), centred per colour (brightness
invariance), then a linear projection learned on 2,000 other CIFAR-10 photos and their edits that shrinks
what edits change and spreads distinct photos apart. Plain thumbnails are not enough: a 1-pixel crop of a
32 px image moves them further than two different ostriches are apart.
"""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from pipeline.semantic.semdedup import semdedup
from tests.helpers import SHARED

THRESHOLD_EPS = 0.1  # removed above cosine 0.9


def cifar(count: int) -> list[Image.Image]:
    images = []
    with tarfile.open(SHARED / "images" / "cifar10_train.tar.gz") as archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".jpg"):
                images.append(Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB"))
                if len(images) == count:
                    return images
    return images


def reencoded(image: Image.Image, quality: int = 30) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def cropped(image: Image.Image, fraction: float = 0.06) -> Image.Image:
    dx, dy = round(image.width * fraction / 2), round(image.height * fraction / 2)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def with_text(image: Image.Image) -> Image.Image:
    """A half-transparent shop watermark across the bottom, as web copies carry."""
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((image.width * 0.05, image.height * 0.84), "© shop.example",
                               fill=(255, 255, 255, 150), font_size=max(4, image.height // 14))
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


EDITS = {
    "resize": lambda image: image.resize((image.width // 2, image.height // 2)) if image.width > 64
    else image.resize((image.width * 3, image.height * 3)),
    "jpeg_quality_30": reencoded,
    "crop_6_percent": cropped,
    "flip": ImageOps.mirror,
    "colour": lambda image: ImageEnhance.Color(ImageEnhance.Brightness(image).enhance(1.12)).enhance(1.2),
    "overlaid_text": with_text,
}


def thumbnail_features(image: Image.Image) -> np.ndarray:
    thumbnail = image.convert("RGB").resize((32, 32), Image.Resampling.BOX).filter(ImageFilter.GaussianBlur(1))
    pixels = np.asarray(thumbnail, dtype=np.float32)
    pixels = (pixels + pixels[:, ::-1]) / 2
    return (pixels - pixels.mean(axis=(0, 1))).reshape(-1)


def unit_features(images: list[Image.Image]) -> np.ndarray:
    features = np.array([thumbnail_features(image) for image in images])
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def learned_whitening(reference: list[Image.Image], dims: int = 64, ridge: float = 0.01):
    """A linear embedding learned on other photos than the pool's and one edit of each (as a model is trained
    with augmentations on other data): whiten the feature differences that edits cause, then keep the
    `dims` directions along which those photos differ most (learned whitening, Radenovic et al. 2018)."""
    features = unit_features(reference)
    edits = list(EDITS.values())
    differences = unit_features([edits[index % len(edits)](image) for index, image in enumerate(reference)]) - features
    within = differences.T @ differences / len(differences)
    within += ridge * np.trace(within) / len(within) * np.eye(len(within))
    values, vectors = np.linalg.eigh(within)
    edit_whitening = vectors / np.sqrt(values)
    mean = features.mean(axis=0)
    _, _, components = np.linalg.svd((features - mean) @ edit_whitening, full_matrices=False)
    projection = edit_whitening @ components[:dims].T
    return lambda images: (unit_features(images) - mean) @ projection


@pytest.fixture(scope="module")
def pool():
    """500 distinct photos (10 UKBench 640x480, 490 CIFAR-10), and six edits of 50 of them; the embedding is
    learned on 2,000 further CIFAR-10 images."""
    photos = cifar(2490)
    originals = [Image.open(path).convert("RGB")
                 for path in sorted((SHARED / "dedup" / "ukbench" / "base").glob("*.jpg"))] + photos[:490]
    sources = list(range(10)) + list(range(10, 500, 12))[:40]
    uids = [f"photo-{index:03d}" for index in range(len(originals))]
    images = list(originals)
    for edit, transform in EDITS.items():
        for source in sources:
            uids.append(f"photo-{source:03d}-{edit}")
            images.append(transform(originals[source]))
    return uids, learned_whitening(photos[490:])(images), len(originals)


@pytest.mark.real_data
def test_each_photo_and_its_edits_keep_exactly_one_and_distinct_photos_all_stay(pool):
    uids, embeddings, distinct = pool
    result = semdedup(embeddings, uids, eps=THRESHOLD_EPS, clusters=8, seed=0)
    rows = result.table.to_pylist()
    photo = {uid: uid[:len("photo-000")] for uid in uids}  # a photo and its edits share this prefix
    kept_per_photo = {}
    for row in rows:
        if row["status"] == "kept":
            kept_per_photo[photo[row["uid"]]] = kept_per_photo.get(photo[row["uid"]], 0) + 1
        else:  # removed as a duplicate of a kept edit or original of the same photo, never of another photo
            assert photo[row["duplicate_of"]] == photo[row["uid"]] and row["similarity"] > 1 - THRESHOLD_EPS
    assert len(kept_per_photo) == distinct and set(kept_per_photo.values()) == {1}
    assert result.sizes[THRESHOLD_EPS] == distinct == len(uids) - 6 * 50


@pytest.mark.real_data
def test_every_kind_of_edit_stays_closer_than_any_two_distinct_photos(pool):
    """The margin behind the test above, per edit: the weakest copy against the closest distinct pair."""
    uids, embeddings, distinct = pool
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    between = unit[:distinct] @ unit[:distinct].T
    np.fill_diagonal(between, -1)
    closest_distinct = float(between.max())
    index = {uid: position for position, uid in enumerate(uids)}
    weakest = {}
    for edit in EDITS:
        pairs = [(index[uid], index[uid.rsplit("-", 1)[0]]) for uid in uids[distinct:] if uid.endswith(edit)]
        weakest[edit] = min(float(unit[copy] @ unit[original]) for copy, original in pairs)
    print(f"closest distinct pair {closest_distinct:.3f}; weakest copy per edit "
          + ", ".join(f"{edit} {value:.3f}" for edit, value in weakest.items()))
    assert closest_distinct < 1 - THRESHOLD_EPS < min(weakest.values())
