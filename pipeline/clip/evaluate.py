"""Evaluate a CLIP model: zero-shot classification and image-text retrieval.

    python -m pipeline.evaluate --checkpoint C --classes FILE --images DIR_OR_TAR [--shards SHARDS] [--out F]

- zero-shot: class names one per line in FILE; images in DIR/<class>/* (an ImageFolder), or a .tar/.tar.gz
  with the same layout (as ../shared/data/images/cifar10_test.tar.gz). Each class is embedded as the mean of
  its prompt templates. Reports top-1, top-5, mean per-class accuracy and each class's accuracy.
- retrieval: image->text and text->image recall@1/5/10 over the samples of held-out webdataset shards.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from pipeline.errors import UserInputError
from pipeline.semantic.embedding import embed_images, embed_texts, load_embedder

TEMPLATES = (
    "a photo of a {}.", "a blurry photo of a {}.", "a low resolution photo of the {}.", "a close-up photo of a {}.",
    "a bright photo of the {}.", "a cropped photo of a {}.", "a good photo of the {}.", "a photo of the small {}.",
    "a photo of the large {}.", "art of the {}.",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def read_classes(path: Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: class list not found")
    classes = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise UserInputError(f"{path}: needs at least two distinct class names, one per line")
    return classes


def labelled_images(source: Path, classes: Sequence[str]) -> Iterator[tuple[bytes, int]]:
    """(image bytes, class index) from DIR/<class>/* or an archive with <anything>/<class>/<file>."""
    index = {name: position for position, name in enumerate(classes)}
    source = Path(source)
    if source.is_dir():
        for path in sorted(source.glob("*/*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.parent.name in index:
                yield path.read_bytes(), index[path.parent.name]
    elif source.is_file() and tarfile.is_tarfile(source):
        with tarfile.open(source) as archive:
            for member in archive:
                parts = member.name.split("/")
                if member.isfile() and Path(member.name).suffix.lower() in IMAGE_SUFFIXES and len(parts) >= 2 \
                        and parts[-2] in index:
                    yield archive.extractfile(member).read(), index[parts[-2]]
    else:
        raise UserInputError(f"{source}: not a folder of class folders or a tar archive")


def _encode_images(embedder, payloads: list[bytes]) -> np.ndarray:
    from PIL import Image

    images = [Image.open(io.BytesIO(payload)).convert("RGB") for payload in payloads]
    return embed_images(embedder, images).astype(np.float32)


def _encode_texts(embedder, texts: list[str]) -> np.ndarray:
    return embed_texts(embedder, texts).astype(np.float32)


def class_embeddings(loaded, classes: Sequence[str], templates: Sequence[str] = TEMPLATES) -> np.ndarray:
    """One unit vector per class: the normalized mean of its prompts' embeddings."""
    prompts = _encode_texts(loaded, [template.format(name) for name in classes for template in templates])
    means = prompts.reshape(len(classes), len(templates), -1).mean(axis=1)
    return means / np.linalg.norm(means, axis=1, keepdims=True)


def read_labelled(images: Path, classes: Sequence[str]) -> list[tuple[bytes, int]]:
    pairs = list(labelled_images(images, classes))
    if not pairs:
        raise UserInputError(f"{images}: no images in folders named after the classes")
    return pairs


def zero_shot(loaded, classes: Sequence[str], images: Path) -> dict:
    return zero_shot_on(loaded, classes, read_labelled(images, classes))


def zero_shot_on(loaded, classes: Sequence[str], pairs: list[tuple[bytes, int]]) -> dict:
    """Zero-shot accuracy over (image bytes, class index) pairs read once (the trainer evaluates repeatedly)."""
    labels = np.array([label for _, label in pairs])
    scores = _encode_images(loaded, [payload for payload, _ in pairs]) @ class_embeddings(loaded, classes).T
    ranked = np.argsort(-scores, axis=1)
    top1 = ranked[:, 0] == labels
    top5 = (ranked[:, :min(5, len(classes))] == labels[:, None]).any(axis=1)
    per_class = {name: float(top1[labels == position].mean()) for position, name in enumerate(classes)
                 if (labels == position).any()}
    return {"images": len(labels), "classes": len(classes), "top1": float(top1.mean()), "top5": float(top5.mean()),
            "mean_per_class": float(np.mean(list(per_class.values()))), "per_class": per_class}


def retrieval(loaded, shards: Sequence[str]) -> dict:
    """Recall@k both ways over the held-out shards' (image, caption) pairs."""
    from webdataset.tariterators import tarfile_samples

    from pipeline.clip.training.data import IMAGE_EXTENSIONS, expand_shards

    payloads, captions = [], []
    for sample in tarfile_samples({"url": shard} for shard in expand_shards(shards)):
        image_key = next((ext for ext in IMAGE_EXTENSIONS if ext in sample), None)
        caption = sample.get("txt", b"").decode("utf-8", errors="replace").strip()
        if image_key and caption:
            payloads.append(sample[image_key])
            captions.append(caption)
    if len(payloads) < 2:
        raise UserInputError(f"{' '.join(shards)}: fewer than two image-caption pairs to retrieve among")
    similarity = _encode_images(loaded, payloads) @ _encode_texts(loaded, captions).T
    truth = np.arange(len(payloads))
    image_rank = (similarity > similarity[truth, truth][:, None]).sum(axis=1)  # texts ranked above the true one
    text_rank = (similarity > similarity[truth, truth][None, :]).sum(axis=0)
    return {"pairs": len(payloads),
            **{f"image_to_text_R@{k}": float((image_rank < k).mean()) for k in (1, 5, 10)},
            **{f"text_to_image_R@{k}": float((text_rank < k).mean()) for k in (1, 5, 10)}}


def evaluate(checkpoint: str | None, model: str | None = None, pretrained: str | None = None,
             classes: Path | None = None, images: Path | None = None, shards: Sequence[str] = ()) -> dict:
    if (classes is None) != (images is None):
        raise UserInputError("zero-shot needs both --classes and --images")
    if classes is None and not shards:
        raise UserInputError("nothing to evaluate: give --classes and --images, and/or --shards")
    class_names = read_classes(classes) if classes is not None else None
    loaded = load_embedder(model, pretrained, checkpoint)
    results: dict = {"model": loaded.name, "checkpoint": checkpoint}
    if class_names is not None:
        results["zero_shot"] = zero_shot(loaded, class_names, Path(images))
    if shards:
        results["retrieval"] = retrieval(loaded, shards)
    return results


def main(argv=None) -> None:
    from pipeline.errors import run_job

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a checkpoint of pipeline.train (names its model)")
    parser.add_argument("--model", help="open_clip model name (needed without a checkpoint)")
    parser.add_argument("--pretrained", help="open_clip pretrained tag")
    parser.add_argument("--classes", type=Path, help="class names, one per line")
    parser.add_argument("--images", type=Path, help="DIR/<class>/* or a tar archive with that layout")
    parser.add_argument("--shards", nargs="*", default=[], help="held-out webdataset shards for retrieval")
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)

    def command() -> None:
        results = evaluate(args.checkpoint, args.model, args.pretrained, args.classes, args.images, args.shards)
        text = json.dumps(results, indent=2)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
        print(text)

    run_job(command)


if __name__ == "__main__":
    main()
