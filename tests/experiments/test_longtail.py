"""The experiment's long-tailed pool: the designed class sizes, copies in the head only, alt-text captions that
name their class (or nothing), reproducible from the seed, built from real CIFAR-10 photos."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from PIL import Image

from pipeline.clip.evaluate import labelled_images, read_classes
from pipeline.errors import UserInputError
from pipeline.experiments.longtail import (
    HeldOut,
    LongTailDesign,
    build_pool,
    near_copy,
    photos_per_class,
    wanted_photos,
)
from pipeline.image.check import hamming, perceptual_hash
from tests.helpers import REPO

PHOTOS = REPO / "data" / "demo_images.tar"  # 50 CIFAR-10 photos per class
CLASSES = read_classes(REPO / "data" / "cifar10_classes.txt")
DESIGN = LongTailDesign(head_rows=80, imbalance=20, head_copy_share=0.5, no_class_share=0.2, seed=3)


@pytest.fixture(scope="module")
def photos() -> dict[str, list[bytes]]:
    return photos_per_class(labelled_images(PHOTOS, CLASSES), CLASSES, wanted_photos(DESIGN, CLASSES), str(PHOTOS))


def test_class_sizes_fall_geometrically_from_head_to_tail_with_copies_in_the_head(photos):
    pool = build_pool(photos, DESIGN)
    order = DESIGN.class_order(CLASSES)
    rows = Counter(row.label for row in pool)
    assert [rows[label] for label in order] == [80, 57, 41, 29, 21, 15, 11, 8, 6, 4]
    assert rows[order[0]] / rows[order[-1]] == 20
    copies = Counter(row.label for row in pool if row.kind != "original")
    assert copies[order[0]] == 40 and copies[order[-1]] == 0
    assert [copies[label] for label in order] == sorted((copies[label] for label in order), reverse=True)
    assert len({row.name for row in pool}) == len(pool)  # every row has its own url


def test_copies_are_exact_or_near_versions_of_a_photo_of_their_class(photos):
    pool = build_pool(photos, DESIGN)
    originals = {row.name: row for row in pool if row.kind == "original"}
    kinds = Counter(row.kind for row in pool)
    assert kinds["exact_copy"] > 0 and kinds["near_copy"] > 0
    for row in pool:
        source = originals[row.source]
        assert source.label == row.label
        if row.kind == "exact_copy":
            assert row.payload == source.payload
        elif row.kind == "near_copy":
            assert row.payload != source.payload
            image, original = Image.open(io.BytesIO(row.payload)), Image.open(io.BytesIO(source.payload))
            assert image.size == original.size
            assert hamming(perceptual_hash(image), perceptual_hash(original)) <= 16


def test_each_edit_keeps_the_photo_recognisable():
    payload = next(labelled_images(PHOTOS, CLASSES))[0]
    original = perceptual_hash(Image.open(io.BytesIO(payload)))
    for edit in ("jpeg", "brightness", "crop"):
        edited = near_copy(payload, edit)
        assert edited != payload
        assert hamming(perceptual_hash(Image.open(io.BytesIO(edited))), original) <= 16, edit
    with pytest.raises(ValueError):
        near_copy(payload, "rotate")


def test_captions_name_their_class_or_nothing(photos):
    pool = build_pool(photos, DESIGN)
    named = [row for row in pool if row.label in row.caption.split()]
    unnamed = [row for row in pool if row not in named]
    assert all(not set(row.caption.split()) & set(CLASSES) for row in unnamed)
    assert 0.1 < len(unnamed) / len(pool) < 0.3  # no_class_share 0.2
    assert len({row.caption for row in named}) > 20  # alt-text, not one template


def test_the_pool_is_reproducible_from_its_seed(photos):
    first, again = build_pool(photos, DESIGN), build_pool(photos, DESIGN)
    assert [(row.name, row.caption, row.payload) for row in first] == \
           [(row.name, row.caption, row.payload) for row in again]
    other = build_pool(photos, LongTailDesign(**{**DESIGN.__dict__, "seed": 4}))
    assert [row.caption for row in other] != [row.caption for row in first]


def test_too_few_photos_and_bad_designs_are_clear_errors():
    greedy = LongTailDesign(head_rows=1000, head_copy_share=0.5)
    with pytest.raises(UserInputError, match="demo_images.tar: too few photos"):
        photos_per_class(labelled_images(PHOTOS, CLASSES), CLASSES, wanted_photos(greedy, CLASSES), str(PHOTOS))
    for bad in (LongTailDesign(head_rows=0), LongTailDesign(imbalance=0.5), LongTailDesign(head_copy_share=1.0),
                LongTailDesign(no_class_share=-0.1)):
        with pytest.raises(UserInputError):
            bad.check()


def test_held_out_photos_never_reach_the_pool():
    held_out = HeldOut(validation=5, reference=8)
    pool_photos = wanted_photos(DESIGN, CLASSES)
    photos = photos_per_class(labelled_images(PHOTOS, CLASSES), CLASSES, held_out.wanted(pool_photos), str(PHOTOS))
    validation, pool, reference = held_out.split(photos, pool_photos)
    for label in CLASSES:
        assert len(validation[label]) == 5 and len(reference[label]) == 8
        assert len(pool[label]) == pool_photos[label]
        assert not set(validation[label]) & (set(pool[label]) | set(reference[label]))
    with pytest.raises(UserInputError, match="--validation-per-class"):
        HeldOut(validation=0).wanted(pool_photos)
