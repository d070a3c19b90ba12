"""Evaluation sets read from folders, tars, list files and images; pool hashes matched against them."""

from __future__ import annotations

import hashlib
import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import UserInputError
from pipeline.image.check import perceptual_hash
from pipeline.image.contamination import describe, hash_matches
from pipeline.image.evalset import eval_images, read_eval_set


def photo(seed: int, size: int = 48) -> Image.Image:
    """A smooth random picture (pHash needs low-frequency structure to tell pictures apart)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture
def sources(tmp_path):
    folder = tmp_path / "folder" / "cats"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(jpeg(photo(1)))
    (folder / "notes.md").write_text("not an image")
    archive = tmp_path / "test.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = jpeg(photo(2))
        info = tarfile.TarInfo("test/dog/0001.jpg")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "listed").mkdir()
    (tmp_path / "listed" / "b.png").write_bytes(jpeg(photo(3)))
    listing = tmp_path / "eval.txt"
    listing.write_text("listed/b.png\n\n")
    single = tmp_path / "c.jpg"
    single.write_bytes(jpeg(photo(4)))
    return [tmp_path / "folder", archive, listing, single]


def test_every_kind_of_source_is_read_and_named(sources, tmp_path):
    names = [name for name, _ in eval_images(sources)]
    assert names == [str(tmp_path / "folder" / "cats" / "a.jpg"), f"{tmp_path / 'test.tar.gz'}:test/dog/0001.jpg",
                     str(tmp_path / "listed" / "b.png"), str(tmp_path / "c.jpg")]
    evalset = read_eval_set(sources, embed=lambda images: np.ones((len(images), 2)))
    assert evalset.names == names and len(set(evalset.sha256)) == 4 and evalset.vectors.shape == (4, 2)
    assert read_eval_set(sources).fingerprint == evalset.fingerprint and read_eval_set(sources).vectors is None
    (tmp_path / "c.jpg").write_bytes(jpeg(photo(5)))
    assert read_eval_set(sources).fingerprint != evalset.fingerprint  # changed content, rerun


def test_bad_sources_are_errors_naming_the_file_and_line(sources, tmp_path):
    with pytest.raises(UserInputError, match="nowhere: no evaluation images there"):
        list(eval_images([tmp_path / "nowhere"]))
    (tmp_path / "eval.txt").write_text("listed/b.png\nlisted/missing.jpg\n")
    with pytest.raises(UserInputError, match=r"missing.jpg \(listed in .*eval.txt, line 2\): cannot read"):
        list(eval_images([tmp_path / "eval.txt"]))
    (tmp_path / "c.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UserInputError, match=r"c.jpg: evaluation image cannot be decoded"):
        read_eval_set([tmp_path / "c.jpg"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no evaluation images in"):
        read_eval_set([tmp_path / "empty"])


def test_exact_and_re_encoded_copies_match_the_right_evaluation_image_and_distinct_ones_do_not():
    originals = [jpeg(photo(seed)) for seed in range(300)]
    evaluation = {"sha": {}, "phash": []}
    for index, data in enumerate(originals):
        evaluation["sha"].setdefault(hashlib.sha256(data).hexdigest(), index)
        evaluation["phash"].append(perceptual_hash(Image.open(io.BytesIO(data))))
    exact = originals[7]
    re_encoded = jpeg(Image.open(io.BytesIO(originals[123])).resize((96, 96)), quality=60)
    distinct = [jpeg(photo(seed)) for seed in range(1_000, 1_200)]
    pool = [exact, re_encoded, *distinct]
    matches = hash_matches([hashlib.sha256(data).hexdigest() for data in pool],
                           np.array([perceptual_hash(Image.open(io.BytesIO(data))) for data in pool]),
                           evaluation["sha"], np.array(evaluation["phash"]), max_distance=6)
    assert [(match.row, match.eval_index, match.kind) for match in matches] == [(0, 7, "exact"), (1, 123, "near")]
    assert describe(matches[0], "test.tar:cat/7.jpg") == "same sha256 as evaluation image test.tar:cat/7.jpg"
    assert describe(matches[1], "x.jpg").startswith("perceptual hash within ")
