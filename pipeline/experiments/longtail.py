"""A web-like, long-tailed image-text pool made of labelled photos (CIFAR-10), for the closed-loop experiment.

What a crawl looks like to MetaCLIP: a few concepts dominate (the head class has hundreds of times the rows of
the tail class), the head is full of re-uploads (the same bytes under another url, or a re-encoded, brightened
or cropped copy), captions are alt-text that names the concept among other words, and some name nothing.
Everything is drawn from one seed: the same design and photos give the same pool.

Besides the pool, two sets of photos: a validation split the study chooses its settings on, held out of the pool
(never served, never trained on), and a class-balanced reference training set (the photos after the validation
split, which the pool may also use), whose per-class accuracy tells class difficulty apart from class frequency.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageEnhance

from pipeline import REPO
from pipeline.errors import UserInputError
from pipeline.image.shards import add_member, shard_name
from pipeline.run.directory import StageResult, file_identity, run_stage
from pipeline.run.stages import STAGES

# CIFAR-10 in ../shared/data: the experiment's labelled photos, and its evaluation set (zero-shot, decontamination)
CIFAR10_TRAIN = REPO.parent / "shared" / "data" / "images" / "cifar10_train.tar.gz"
CIFAR10_TEST = REPO.parent / "shared" / "data" / "images" / "cifar10_test.tar.gz"

POOL = STAGES["pool"]

# Besides the class, captions use only the most common words of alt-text, as on the web, where such words
# occur far more often than any per-entry cap t (at this pool's scale, rarer words would have counts below t
# and balancing would keep every caption that has one).
CLASS_TEMPLATES = (
    "{cls}", "a {cls}", "the {cls}", "a photo of a {cls}", "photo of the {cls}", "an image of a {cls}",
    "the {cls} in a photo", "picture of a {cls}", "{cls} photo", "{cls} image", "a picture of the {cls}",
)
NO_CLASS_TEMPLATES = ("DSC_{n}", "photo", "image", "an image of the", "a picture", "the photo", "photo of a")
EDITS = ("jpeg", "brightness", "crop")  # near-copies cycle through these


@dataclass(frozen=True)
class LongTailDesign:
    head_rows: int = 5000  # rows of the most frequent class, copies included
    imbalance: float = 200.0  # rows of the most frequent class over those of the least frequent
    head_copy_share: float = 0.5  # share of copies in the head class; falls linearly to none in the tail
    no_class_share: float = 0.1  # captions that name no class
    seed: int = 0

    def check(self) -> None:
        if self.head_rows < 1 or self.imbalance < 1:
            raise UserInputError("the head class needs at least one row and --imbalance must be at least 1")
        if not (0 <= self.head_copy_share < 1 and 0 <= self.no_class_share < 1):
            raise UserInputError("copy and no-class shares must be in [0, 1)")

    def class_order(self, classes: Sequence[str]) -> list[str]:
        """Classes from the most to the least frequent: a seeded permutation."""
        order = np.random.default_rng(self.seed).permutation(len(classes))
        return [classes[index] for index in order]

    def rows_and_copies(self, rank: int, classes: int) -> tuple[int, int]:
        """(rows, copies among them) of the class at this frequency rank: a geometric fall from head to tail."""
        depth = rank / max(1, classes - 1)
        rows = max(1, round(self.head_rows * self.imbalance ** -depth))
        return rows, round(rows * self.head_copy_share * (1 - depth))


@dataclass(frozen=True)
class HeldOut:
    """Photos per class kept out of the pool: the first `validation` of each class are the validation split;
    the reference set takes the `reference` photos after them (it may share photos with the pool)."""

    validation: int = 200
    reference: int = 500

    def wanted(self, pool_photos: dict[str, int]) -> dict[str, int]:
        if self.validation < 1 or self.reference < 1:
            raise UserInputError("--validation-per-class and --reference-per-class must be at least 1")
        return {label: self.validation + max(count, self.reference) for label, count in pool_photos.items()}

    def split(self, photos: dict[str, list[bytes]], pool_photos: dict[str, int]) -> tuple[dict, dict, dict]:
        """(validation, pool, reference) photos per class."""
        start = self.validation
        return ({label: found[:start] for label, found in photos.items()},
                {label: found[start:start + pool_photos[label]] for label, found in photos.items()},
                {label: found[start:start + self.reference] for label, found in photos.items()})


@dataclass(frozen=True)
class PoolImage:
    """One row of the pool: the image under its served name, its caption, and what it really is."""

    name: str
    payload: bytes
    caption: str
    label: str
    kind: str  # original | exact_copy | near_copy
    source: str  # the original's name (itself for an original)


def photos_per_class(labelled: Iterable[tuple[bytes, int]], classes: Sequence[str], wanted: dict[str, int],
                     origin: str) -> dict[str, list[bytes]]:
    """The first `wanted[class]` photos of each class from (bytes, class index) pairs; too few is an error."""
    photos: dict[str, list[bytes]] = {name: [] for name in classes}
    for payload, label in labelled:
        bucket = photos[classes[label]]
        if len(bucket) < wanted.get(classes[label], 0):
            bucket.append(payload)
    short = {name: (len(photos[name]), count) for name, count in wanted.items() if len(photos[name]) < count}
    if short:
        raise UserInputError(f"{origin}: too few photos for the design (class: found, needed): {short}")
    return photos


def near_copy(payload: bytes, edit: str) -> bytes:
    """A re-upload that is not byte-identical: re-encoded harder, brightened, or cropped by a pixel and resized."""
    image = Image.open(io.BytesIO(payload)).convert("RGB")
    quality = 90
    if edit == "jpeg":
        quality = 60
    elif edit == "brightness":
        image = ImageEnhance.Brightness(image).enhance(1.15)
    elif edit == "crop":
        width, height = image.size
        image = image.crop((1, 1, width - 1, height - 1)).resize((width, height), Image.Resampling.BICUBIC)
    else:
        raise ValueError(f"unknown edit {edit!r}")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def caption(rng: np.random.Generator, label: str, no_class_share: float) -> str:
    """Alt-text: the class among common words, or (with probability no_class_share) no class at all."""
    templates = CLASS_TEMPLATES if rng.random() >= no_class_share else NO_CLASS_TEMPLATES
    return templates[rng.integers(len(templates))].format(cls=label, n=rng.integers(1000, 9999))


def build_pool(photos: dict[str, list[bytes]], design: LongTailDesign) -> list[PoolImage]:
    """The pool's rows in crawl order (shuffled): every class's originals, then its copies of them."""
    rng = np.random.default_rng(design.seed)
    order = design.class_order(list(photos))
    rows: list[PoolImage] = []
    for rank, label in enumerate(order):
        total, copies = design.rows_and_copies(rank, len(order))
        originals = [PoolImage(f"{label}-{index:05d}.jpg", payload, caption(rng, label, design.no_class_share),
                               label, "original", f"{label}-{index:05d}.jpg")
                     for index, payload in enumerate(photos[label][:total - copies])]
        rows += originals
        for number, index in enumerate(rng.integers(len(originals), size=copies)):
            source = originals[index]
            exact = number % 2 == 0
            payload = source.payload if exact else near_copy(source.payload, EDITS[(number // 2) % len(EDITS)])
            rows.append(PoolImage(f"{label}-copy-{number:05d}.jpg", payload,
                                  caption(rng, label, design.no_class_share), label,
                                  "exact_copy" if exact else "near_copy", source.name))
    return [rows[index] for index in rng.permutation(len(rows))]


def wanted_photos(design: LongTailDesign, classes: Sequence[str]) -> dict[str, int]:
    """Distinct photos each class needs: its rows less its copies."""
    wanted = {}
    for rank, label in enumerate(design.class_order(list(classes))):
        rows, copies = design.rows_and_copies(rank, len(classes))
        wanted[label] = rows - copies
    return wanted


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_labelled_tar(path: Path, photos: dict[str, list[bytes]]) -> None:
    """Photos as a `<class>/<number>.jpg` tar: the layout zero-shot evaluation reads."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for label, payloads in photos.items():
            for index, payload in enumerate(payloads):
                add_member(tar, f"{label}/{index:05d}.jpg", payload)


def write_reference_shards(out: Path, photos: dict[str, list[bytes]], seed: int, shards: int = 8) -> int:
    """The class-balanced reference training set as webdataset shards: every photo with a caption naming its
    class, in a seeded order. Returns the samples written."""
    rng = np.random.default_rng([seed, 1])
    samples = [(label, payload, caption(rng, label, no_class_share=0.0))
               for label, payloads in photos.items() for payload in payloads]
    out.mkdir()
    order = rng.permutation(len(samples))
    for shard in range(shards):
        with tarfile.open(out / shard_name(shard), "w", format=tarfile.USTAR_FORMAT) as tar:
            for index in order[shard::shards]:
                label, payload, text = samples[index]
                uid = f"{int(index):032x}"
                add_member(tar, f"{uid}.jpg", payload)
                add_member(tar, f"{uid}.txt", text.encode("utf-8"))
                add_member(tar, f"{uid}.json", json.dumps({"uid": uid, "label": label}).encode("utf-8"))
    return len(samples)


def write_pool(run_dir: Path, design: LongTailDesign, labelled: Path, classes: Sequence[str],
               held_out: HeldOut = HeldOut(), force: bool = False) -> dict:
    """DIR/pool: images/ to serve, pool.jsonl (url, caption), labels.parquet (the same with what each url shows),
    validation.tar (held out) and reference/ (the class-balanced set): see HeldOut.

    The urls name a port on 127.0.0.1, chosen once and kept in the manifest, so a rerun serves the same urls
    and every later stage of the run stays current.
    """
    from pipeline.clip.evaluate import labelled_images

    design.check()

    def body(out_dir: Path) -> StageResult:
        pool_photos = wanted_photos(design, classes)
        photos = photos_per_class(labelled_images(labelled, classes), classes, held_out.wanted(pool_photos),
                                  str(labelled))
        validation, photos, reference = held_out.split(photos, pool_photos)
        write_labelled_tar(out_dir / POOL.files["validation"], validation)
        references = write_reference_shards(out_dir / POOL.files["reference"], reference, design.seed)
        rows = build_pool(photos, design)
        port = free_port()
        (out_dir / POOL.files["images"]).mkdir()
        urls = [f"http://127.0.0.1:{port}/img/{row.name}" for row in rows]
        with open(out_dir / POOL.files["pool"], "w", encoding="utf-8") as pool:
            for row, url in zip(rows, urls):
                (out_dir / POOL.files["images"] / row.name).write_bytes(row.payload)
                pool.write(json.dumps({"url": url, "caption": row.caption}) + "\n")
        pq.write_table(pa.table({"name": [row.name for row in rows], "url": urls,
                                 "caption": [row.caption for row in rows],
                                 "label": [row.label for row in rows], "kind": [row.kind for row in rows],
                                 "source": [row.source for row in rows]}), out_dir / POOL.files["labels"])
        order = design.class_order(list(classes))
        class_rows = {label: sum(row.label == label for row in rows) for label in order}
        kinds = {kind: sum(row.kind == kind for row in rows) for kind in ("original", "exact_copy", "near_copy")}
        return StageResult(len(rows), len(rows), extra={
            "port": port, "class_rows": class_rows, "kinds": kinds,
            "validation_images": sum(map(len, validation.values())), "reference_samples": references})

    config = {"design": asdict(design), "held_out": asdict(held_out), "classes": list(classes)}
    return run_stage(Path(run_dir), POOL.folder, config, {"photos": file_identity([Path(labelled)])}, body, force=force)
