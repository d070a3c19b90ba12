"""Benchmarks of embeddings, semantic dedup and decontamination, each step timed in the same run.

    make bench            (python -m bench.dedup [--count 1000000] [--clusters 1000] [--images 2000]
                                             [--pool 200000])

- SemDeDup (pipeline.semantic.semdedup.semdedup) on random unit 512-d embeddings: k-means on its sample, assignment
  of every embedding, dedup within clusters; embeddings/s overall, on the FAISS device found (GPU when
  faiss-gpu sees one, CPU otherwise).
- Embedding throughput of the tiny bundled model on CIFAR-10 JPEGs: the embed stage's function (loader
  threads decode and preprocess, the model embeds) next to the bare forward pass on already prepared tensors,
  on the torch device found, with the share of time spent waiting for decoded images.
- Score filters (pipeline.semantic.score_filters) on random unit 512-d embeddings stored as float16, as the embed
  stage stores them: CLIP scoring (the image-caption cosine of every sample) from them and from float32 (as the
  stage's tasks hand them on) next to the bare float32 product, and the assignment of every embedding to its
  nearest of the k-means centroids; per core (one FAISS thread) on the CPU.
- Decontamination search: pool images/s checked against CIFAR-10's 10,000 test images, by hash (sha256 and
  pHash, pipeline.image.contamination) and by embedding (nearest evaluation image, 512-d, the backend found).
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


def bench_semdedup(count: int, clusters: int, dim: int = 512, eps: float = 0.05, backend: str = "auto") -> dict:
    """Seconds of each SemDeDup step on random unit embeddings."""
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((count, dim), dtype=np.float32)
    result = semdedup(embeddings, [str(index) for index in range(count)], eps, clusters, seed=0, backend=backend)
    total = sum(result.seconds.values())
    return {"embeddings": count, "dim": dim, "clusters": clusters, "eps": eps, "kept": result.sizes[eps],
            "device": result.device, **{f"{step}_s": value for step, value in result.seconds.items()},
            "embeddings_per_s": count / total}


def cifar_jpegs(count: int) -> list[bytes]:
    blobs = []
    with tarfile.open(SHARED / "images" / "cifar10_train.tar.gz") as archive:
        for member in archive:
            if member.isfile() and member.name.endswith((".jpg", ".png")):
                blobs.append(archive.extractfile(member).read())
                if len(blobs) == count:
                    break
    return blobs


def bench_embedding(count: int, batch_size: int = 256) -> dict:
    import torch
    from PIL import Image

    from pipeline.semantic.embedding import EmbedTiming, embed_encoded, load_embedder

    blobs = cifar_jpegs(count)
    images = [Image.open(io.BytesIO(blob)).convert("RGB") for blob in blobs]
    embedder = load_embedder("metacurate-tiny")
    embed_encoded(embedder, blobs[:batch_size], batch_size)  # warm-up
    timing = EmbedTiming()
    embed_encoded(embedder, blobs, batch_size, timing=timing)
    ours = timing.seconds
    tensors = [torch.stack([embedder.preprocess(image) for image in images[start:start + batch_size]])
               for start in range(0, len(images), batch_size)]
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in tensors:
            embedder.model.encode_image(batch.to(embedder.device))
    bare = time.perf_counter() - started
    return {"images": len(images), "model": embedder.name, "device": embedder.device, "batch_size": batch_size,
            "embed_images_per_s": len(images) / ours, "bare_forward_images_per_s": len(images) / bare,
            "data_wait_share": timing.wait_share, "threads": torch.get_num_threads()}


def random_unit(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def bench_decontamination(pool: int, dim: int = 512) -> dict:
    """Pool images/s checked against CIFAR-10's test set: hashes (its real sha256 and pHashes), and embeddings
    (random unit vectors: the search costs the same whatever they hold)."""
    from pipeline.image.contamination import hash_matches
    from pipeline.image.evalset import read_eval_set
    from pipeline.semantic.backends import choose_backend

    evaluation = read_eval_set([SHARED / "images" / "cifar10_test.tar.gz"])
    rng = np.random.default_rng(0)
    digests = [f"{index:064x}" for index in range(pool)]
    hashes = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, size=pool, dtype=np.int64)
    reference = {digest: index for index, digest in enumerate(evaluation.sha256)}
    started = time.perf_counter()
    found = hash_matches(digests, hashes, reference, evaluation.phash, max_distance=6)
    hash_seconds = time.perf_counter() - started
    backend = choose_backend()
    pool_vectors, eval_vectors = random_unit(rng, pool, dim), random_unit(rng, len(evaluation.names), dim)
    started = time.perf_counter()
    backend.nearest(pool_vectors, eval_vectors)
    semantic_seconds = time.perf_counter() - started
    return {"pool": pool, "eval_images": len(evaluation.names), "hash_matches": len(found),
            "hash_images_per_s": pool / hash_seconds, "semantic_images_per_s": pool / semantic_seconds,
            "backend": backend.label, "dim": dim}


def bench_score_filters(count: int, clusters: int, dim: int = 512, backend: str = "faiss-cpu",
                        threads: int | None = 1) -> dict:
    """Seconds of CLIP scoring and of the nearest-centroid assignment of `count` embeddings (FAISS limited to
    `threads` threads when given: per core)."""
    import faiss

    from pipeline.semantic.backends import choose_backend
    from pipeline.semantic.score_filters import clip_scores
    from pipeline.semantic.semdedup import assign

    rng = np.random.default_rng(0)
    image, text = (random_unit(rng, count, dim).astype(np.float16) for _ in range(2))
    centroids = random_unit(rng, clusters, dim)  # the assignment costs the same whatever the centroids are
    engine, before = choose_backend(backend), faiss.omp_get_max_threads()
    started = time.perf_counter()
    clip_scores(image, text)
    float16_s = time.perf_counter() - started
    image32, text32 = (np.concatenate([part[start:start + 65536].astype(np.float32)
                                       for start in range(0, count, 65536)]) for part in (image, text))
    score_s = bare_s = float("inf")
    for _ in range(3):  # in turns, best of each: the first product of a process runs cold
        started = time.perf_counter()
        clip_scores(image32, text32)
        score_s = min(score_s, time.perf_counter() - started)
        started = time.perf_counter()
        np.einsum("ij,ij->i", image32, text32)
        bare_s = min(bare_s, time.perf_counter() - started)
    del text32
    if threads:
        faiss.omp_set_num_threads(threads)
    try:
        started = time.perf_counter()
        assign(image32, centroids, engine)
        assign_s = time.perf_counter() - started
    finally:
        faiss.omp_set_num_threads(before)
    return {"embeddings": count, "dim": dim, "clusters": clusters, "backend": engine.label, "threads": threads,
            "score_from_float16_s": float16_s, "score_s": score_s, "bare_product_s": bare_s, "assign_s": assign_s,
            "scores_from_float16_per_s": count / float16_s, "scores_per_s": count / score_s,
            "bare_products_per_s": count / bare_s, "assignments_per_s": count / assign_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=200_000)
    args = parser.parse_args()
    dedup = bench_semdedup(args.count, args.clusters)
    print(f"SemDeDup of {dedup['embeddings']:,} random {dedup['dim']}-d embeddings, {dedup['clusters']} clusters, "
          f"backend {dedup['device']}:")
    print(f"  k-means {dedup['kmeans_s']:.1f} s, assignment {dedup['assign_s']:.1f} s, dedup within clusters "
          f"{dedup['dedup_s']:.1f} s: {dedup['embeddings_per_s']:,.0f} embeddings/s")
    embedding = bench_embedding(args.images)
    print(f"embedding {embedding['images']:,} CIFAR-10 images with {embedding['model']} on {embedding['device']} "
          f"({embedding['threads']} threads), batch {embedding['batch_size']}:")
    print(f"  embed function {embedding['embed_images_per_s']:,.0f} images/s, bare forward pass "
          f"{embedding['bare_forward_images_per_s']:,.0f} images/s: "
          f"{embedding['embed_images_per_s'] / embedding['bare_forward_images_per_s']:.2f}x; waiting for decoded "
          f"images {embedding['data_wait_share']:.0%} of the time")
    scoring = bench_score_filters(args.count, args.clusters)
    print(f"score filters over {scoring['embeddings']:,} x {scoring['dim']} float16 embeddings, one core:")
    print(f"  CLIP scores {scoring['scores_from_float16_per_s']:,.0f}/s from float16, {scoring['scores_per_s']:,.0f}/s "
          f"from float32 (the bare float32 product {scoring['bare_products_per_s']:,.0f}/s: "
          f"{scoring['score_s'] / scoring['bare_product_s']:.2f}x its time)")
    print(f"  assignment to {scoring['clusters']:,} centroids ({scoring['backend']}) "
          f"{scoring['assignments_per_s']:,.0f}/s")
    decontamination = bench_decontamination(args.pool)
    print(f"decontamination of {decontamination['pool']:,} pool images against {decontamination['eval_images']:,} "
          f"CIFAR-10 test images:")
    print(f"  sha256 + pHash {decontamination['hash_images_per_s']:,.0f} images/s on one core; embeddings "
          f"({decontamination['dim']}-d, {decontamination['backend']}) "
          f"{decontamination['semantic_images_per_s']:,.0f} images/s")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "dedup.json").write_text(json.dumps({"semdedup": dedup, "embedding": embedding, "score_filters": scoring,
                                                "decontamination": decontamination}, indent=2) + "\n")
    print(f"results: {OUT / 'dedup.json'}")


if __name__ == "__main__":
    main()
