"""An evaluation set's images, read from where users keep them, and fingerprinted like the pool's.

`--eval` takes folders (every image below them), tar archives (CIFAR-10's test tar as it is: .tar, .tar.gz,
.tgz), list files (.txt or .lst, one image path per line, relative to the list's folder) and single images.
Each image is named by where it came from: its path, or `archive.tar.gz:member/name.jpg`. An image that
cannot be read is an error naming it: an evaluation image left unchecked would be contamination unseen.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from pipeline.errors import UserInputError
from pipeline.image.check import ImageLimits, inspect_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
LIST_SUFFIXES = (".txt", ".lst")
ANY_SIZE = ImageLimits(min_side=0, max_aspect=float("inf"))
EMBED_BATCH = 256


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _read_image_file(path: Path, named_in: str | None = None) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        where = f" (listed in {named_in})" if named_in else ""
        raise UserInputError(f"{path}{where}: cannot read evaluation image: {error.strerror}") from None


def eval_images(sources) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every image the sources hold, in a stable order."""
    for source in sources:
        path = Path(source)
        if path.is_dir():
            for file in sorted(child for child in path.rglob("*") if child.is_file() and _is_image(child.name)):
                yield str(file), _read_image_file(file)
        elif path.is_file() and path.name.lower().endswith(TAR_SUFFIXES):
            try:
                with tarfile.open(path) as archive:
                    for member in archive:
                        if member.isfile() and _is_image(member.name):
                            yield f"{path}:{member.name}", archive.extractfile(member).read()
            except (tarfile.TarError, OSError, EOFError) as error:
                raise UserInputError(f"{path}: not a readable tar archive ({error})") from None
        elif path.is_file() and path.name.lower().endswith(LIST_SUFFIXES):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    listed = path.parent / line.strip()
                    if not _is_image(listed.name):
                        raise UserInputError(f"{path}, line {number}: {line.strip()} is not an image file")
                    yield str(listed), _read_image_file(listed, f"{path}, line {number}")
        elif path.is_file() and _is_image(path.name):
            yield str(path), _read_image_file(path)
        else:
            raise UserInputError(f"{source}: no evaluation images there (expected a folder, a tar archive, "
                                 f"a list file ({', '.join(LIST_SUFFIXES)}) or an image)")


@dataclass(frozen=True)
class EvalSet:
    names: list[str]
    sha256: list[str]
    phash: np.ndarray  # int64, one per image
    vectors: np.ndarray | None  # unit embeddings, one row per image, when an embedder was given
    fingerprint: str  # over the names and contents: a changed evaluation set makes the stage rerun


def read_eval_set(sources, embed: Callable[[list], np.ndarray] | None = None) -> EvalSet:
    """Fingerprint every evaluation image (sha256, pHash as validation computes them) and, with `embed`, embed
    it (in batches, so a large set is never held decoded)."""
    names, digests, hashes, vectors, batch = [], [], [], [], []
    identity = hashlib.sha256()
    for name, data in eval_images(sources):
        facts = inspect_image(data, ANY_SIZE)
        if facts.reason is not None:
            raise UserInputError(f"{name}: evaluation image cannot be decoded ({facts.detail})")
        names.append(name)
        digests.append(facts.sha256)
        hashes.append(facts.phash)
        identity.update(f"{name}\0{facts.sha256}\n".encode())
        if embed is not None:
            batch.append(Image.open(io.BytesIO(data)).convert("RGB"))
            if len(batch) == EMBED_BATCH:
                vectors.append(embed(batch))
                batch = []
    if not names:
        raise UserInputError(f"no evaluation images in {', '.join(map(str, sources))}")
    if embed is not None and batch:
        vectors.append(embed(batch))
    return EvalSet(names, digests, np.array(hashes, dtype=np.int64),
                   np.concatenate(vectors).astype(np.float32) if embed is not None else None, identity.hexdigest())
