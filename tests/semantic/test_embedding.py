"""open_clip embeddings with the bundled tiny config, on CPU."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import UserInputError
from pipeline.semantic.embedding import EmbedTiming, embed_encoded, embed_images, embed_texts, load_embedder


@pytest.fixture(scope="module")
def tiny():
    return load_embedder("metacurate-tiny", device="cpu")


def test_tiny_model_embeds_images_and_captions_as_unit_float16(tiny, cifar_images):
    images = [Image.open(path).convert("RGB") for path in list(cifar_images.values())[:10]]
    vectors = embed_images(tiny, images, batch_size=4)
    assert vectors.shape == (10, 128) and vectors.dtype == np.float16
    assert np.allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1, atol=1e-2)
    assert np.abs(vectors[0].astype(np.float32) @ vectors[1].astype(np.float32)) < 0.9999  # not all the same
    texts = embed_texts(tiny, ["a photo of a cat", "a red truck"])
    assert texts.shape == (2, 128) and not np.allclose(texts[0], texts[1])
    again = embed_images(load_embedder("metacurate-tiny", device="cpu"), images[:2])
    assert np.array_equal(again, vectors[:2])  # seeded initialisation: the same model every time


def test_unknown_model_and_missing_checkpoint_are_clear_errors(tmp_path):
    with pytest.raises(UserInputError, match="unknown open_clip model 'no-such-model'"):
        load_embedder("no-such-model", device="cpu")
    with pytest.raises(UserInputError, match="nope.pt: checkpoint not found"):
        load_embedder("metacurate-tiny", checkpoint=str(tmp_path / "nope.pt"), device="cpu")


def test_loader_threads_decode_ahead_and_name_what_they_cannot_decode(tiny, cifar_images):
    blobs = [path.read_bytes() for path in list(cifar_images.values())[:9]]
    blobs.insert(4, b"<html>not an image</html>")
    timing = EmbedTiming()
    vectors, positions, errors = embed_encoded(tiny, blobs, batch_size=3, loaders=2, ahead=1, timing=timing)
    assert positions == [0, 1, 2, 3, 5, 6, 7, 8, 9] and list(errors) == [4]
    assert errors[4].startswith("UnidentifiedImageError")
    decoded = [Image.open(io.BytesIO(blobs[position])).convert("RGB") for position in positions]
    assert np.array_equal(vectors, embed_images(tiny, decoded, batch_size=3))
    assert timing.images == 9 and 0 <= timing.wait_share <= 1 and timing.seconds > 0
