"""Decode one image, check it against the user's limits, and fingerprint it (sha256 and a perceptual hash).

The perceptual hash is the classic DCT pHash: the image in gray at 32x32, its 2-D DCT, and one bit per
coefficient of the 8x8 lowest frequencies, set when the coefficient is above their median. Resizing,
re-encoding and dropping colour move few bits; a different photo differs in about half of them.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

HASH_SIDE = 32
LOW_FREQUENCIES = 8


def _dct_matrix(size: int) -> np.ndarray:
    """Orthonormal DCT-II basis, so a 2-D DCT is two matrix products."""
    positions = np.arange(size)
    basis = np.cos(np.pi * (2 * positions[None, :] + 1) * positions[:, None] / (2 * size))
    basis[0] /= np.sqrt(2)
    return basis * np.sqrt(2 / size)


_DCT = _dct_matrix(HASH_SIDE)
_BIT_WEIGHTS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def perceptual_hash(image: Image.Image) -> int:
    """64-bit DCT pHash of an image, as a signed 64-bit integer (Arrow/Spark's long)."""
    gray = image.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(gray, dtype=np.float64)
    low = (_DCT @ pixels @ _DCT.T)[:LOW_FREQUENCIES, :LOW_FREQUENCIES].ravel()
    bits = (low > np.median(low[1:])).astype(np.uint64)  # the DC term would dominate the median
    return int(np.sum(bits * _BIT_WEIGHTS, dtype=np.uint64).astype(np.int64))


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & 0xFFFFFFFFFFFFFFFF).bit_count()


@dataclass(frozen=True)
class ImageLimits:
    """What a kept image must satisfy; the defaults are DataComp's basic filter (shorter side 200, aspect 3)."""

    min_side: int = 200
    max_aspect: float = 3.0
    max_pixels: int = 178_956_970  # PIL's own decompression-bomb limit


@dataclass(frozen=True)
class ImageFacts:
    width: int | None
    height: int | None
    sha256: str
    phash: int | None
    reason: str | None  # why the image is rejected, None when it passes
    detail: str | None = None


def inspect_image(data: bytes, limits: ImageLimits, source_size: tuple[int, int] | None = None) -> ImageFacts:
    """Decode fully (a truncated file fails here), then check the limits on the source size.

    source_size is the size before the downloader resized the image, when known: limits are about the
    image the web served, not the copy stored.
    """
    digest = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except Exception as err:  # noqa: BLE001 - PIL raises many types for bad files; each is a reject
        return ImageFacts(None, None, digest, None, "undecodable", f"{type(err).__name__}: {err}"[:200])
    width, height = source_size if source_size and all(source_size) else image.size
    reason = detail = None
    if min(width, height) < limits.min_side:
        reason, detail = "too_small", f"{width}x{height}, shorter side under {limits.min_side}"
    elif max(width, height) / min(width, height) > limits.max_aspect:
        reason, detail = "extreme_aspect", f"{width}x{height}, aspect over {limits.max_aspect:g}"
    elif width * height > limits.max_pixels:
        reason, detail = "too_many_pixels", f"{width}x{height}"
    return ImageFacts(width, height, digest, perceptual_hash(image), reason, detail)
