"""Benchmarks of embeddings and semantic dedup, each step timed in the same run.

    make bench            (python -m bench.dedup [--count 1000000] [--clusters 1000] [--images 2000])

- SemDeDup (pipeline.semantic.semdedup.semdedup) on random unit 512-d embeddings: k-means on its sample, assignment
  of every embedding, dedup within clusters; embeddings/s overall, on the FAISS device found (GPU when
  faiss-gpu sees one, CPU otherwise).
- Embedding throughput of the tiny bundled model on CIFAR-10 JPEGs: the embed function (decode,
  preprocess, forward) next to the bare forward pass on already prepared tensors, on the torch device found.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import time
from pathlib import Path

import numpy as np

from pipeline.semantic.semdedup import semdedup

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "bench" / "out"


def bench_semdedup(count: int, clusters: int, dim: int = 512, eps: float = 0.05) -> dict:
    """Seconds of each SemDeDup step on random unit embeddings."""
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((count, dim), dtype=np.float32)
    result = semdedup(embeddings, [str(index) for index in range(count)], eps, clusters, seed=0)
    total = sum(result.seconds.values())
    return {"embeddings": count, "dim": dim, "clusters": clusters, "eps": eps, "kept": result.sizes[eps],
            "device": result.device, **{f"{step}_s": value for step, value in result.seconds.items()},
            "embeddings_per_s": count / total}


def cifar_images(count: int) -> list:
    from PIL import Image

    images = []
    with tarfile.open(SHARED / "images" / "cifar10_train.tar.gz") as archive:
        for member in archive:
            if member.isfile() and member.name.endswith((".jpg", ".png")):
                images.append(Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB"))
                if len(images) == count:
                    break
    return images


def bench_embedding(count: int, batch_size: int = 256) -> dict:
    import torch

    from pipeline.semantic.embedding import embed_images, load_embedder

    images = cifar_images(count)
    embedder = load_embedder("metacurate-tiny")
    embed_images(embedder, images[:batch_size], batch_size)  # warm-up
    started = time.perf_counter()
    embed_images(embedder, images, batch_size)
    ours = time.perf_counter() - started
    tensors = [torch.stack([embedder.preprocess(image) for image in images[start:start + batch_size]])
               for start in range(0, len(images), batch_size)]
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in tensors:
            embedder.model.encode_image(batch.to(embedder.device))
    bare = time.perf_counter() - started
    return {"images": len(images), "model": embedder.name, "device": embedder.device, "batch_size": batch_size,
            "embed_images_per_s": len(images) / ours, "bare_forward_images_per_s": len(images) / bare,
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    dedup = bench_semdedup(args.count, args.clusters)
    print(f"SemDeDup of {dedup['embeddings']:,} random {dedup['dim']}-d embeddings, {dedup['clusters']} clusters, "
          f"FAISS on {dedup['device']}:")
    print(f"  k-means {dedup['kmeans_s']:.1f} s, assignment {dedup['assign_s']:.1f} s, dedup within clusters "
          f"{dedup['dedup_s']:.1f} s: {dedup['embeddings_per_s']:,.0f} embeddings/s")
    embedding = bench_embedding(args.images)
    print(f"embedding {embedding['images']:,} CIFAR-10 images with {embedding['model']} on {embedding['device']} "
          f"({embedding['threads']} threads), batch {embedding['batch_size']}:")
    print(f"  embed function {embedding['embed_images_per_s']:,.0f} images/s, bare forward pass "
          f"{embedding['bare_forward_images_per_s']:,.0f} images/s: "
          f"{embedding['embed_images_per_s'] / embedding['bare_forward_images_per_s']:.2f}x")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "dedup.json").write_text(json.dumps({"semdedup": dedup, "embedding": embedding}, indent=2) + "\n")
    print(f"results: {OUT / 'dedup.json'}")


if __name__ == "__main__":
    main()
