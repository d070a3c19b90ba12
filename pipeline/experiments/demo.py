"""The offline image demo: CIFAR-10 images shipped in data/, served on 127.0.0.1, as a small web pool.

The pool has what a crawl has: alt-text-like captions, the same image under two urls, a dead link,
a page that is not an image and a url of another scheme, so every stage has something to do. Its
evaluation set is one photo of each class, which the pool serves too, as the web serves benchmark images:
decontamination removes them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline import REPO
from pipeline.experiments.image_server import ImageServer, unpack_jpegs

DEMO_IMAGES = REPO / "data" / "demo_images.tar"
TEMPLATES = ("a photo of a {}", "my {} in the garden", "{} for sale, good condition", "close-up of the {}",
             "a small {} on a sunny day")
COPIES = 25  # images listed a second time under another url and caption


def demo_files(folder: Path) -> dict[str, Path]:
    return unpack_jpegs(DEMO_IMAGES, folder, limit=10_000)


def write_demo_pool(server: ImageServer, names: list[str], path: Path) -> int:
    """A JSON-lines pool of the served images (names like train_cat_0001.jpg); returns its rows."""
    rows = []
    for index, name in enumerate(sorted(names)):
        label = name.split("_")[1]
        rows.append({"url": server.url("img", name), "caption": TEMPLATES[index % len(TEMPLATES)].format(label)})
    for index, name in enumerate(sorted(names)[:: len(names) // COPIES][:COPIES]):
        copy = f"copy-{name}"
        server.files[copy] = server.files[name]
        rows.append({"url": server.url("img", copy), "caption": f"{name.split('_')[1]} picture #{index}"})
    rows += [{"url": server.url("missing", "gone.jpg"), "caption": "a photo of a cat"},
             {"url": server.url("html", "page.jpg"), "caption": "a photo of a dog"},
             {"url": "ftp://127.0.0.1/truck.jpg", "caption": "a photo of a truck"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return len(rows)


def write_demo_eval_set(files: dict[str, Path], folder: Path) -> Path:
    """The demo's evaluation images (the first photo of each class, by name) copied into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    first_of_class: dict[str, str] = {}
    for name in sorted(files):
        first_of_class.setdefault(name.split("_")[1], name)
    for name in first_of_class.values():
        shutil.copyfile(files[name], folder / name)
    return folder
