"""The GPU check: one prepared script for a lent H100/H200-class machine that has no package index.

    make gpu-wheels       (here, on a CPU machine with the project installed: wheels into .whl/, ignored)
    make gpu-check        (there: python3 -m bench.gpu [--embed-images 20000] [--semdedup-count 1000000]
                                                       [--train-samples 25600])

It runs the package from the source tree with that machine's own torch (no `pip install -e .`: the project
pins torch 2.13) and installs the few packages it lacks from the wheels carried in .whl/. It writes
bench/out/gpu.json:

- embedding: ViT-B-32 (random initialisation) over real JPEGs (the shipped CIFAR-10 photos, upscaled to
  256 px and re-encoded, as web images come), images/s and the share of time waiting for decoded images;
- SemDeDup of 1M x 512 embeddings: the GPU backend against faiss-cpu in the same run (k-means, assignment,
  dedup seconds);
- the score filters over the same count: CLIP scores/s, and the k-means assignment on the GPU backend against
  faiss-cpu on all cores;
- the trainer: ViT-B-32, bf16, batch 256, samples/s of pipeline.train against open_clip_train.main on the same
  shards, with the data-wait share.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WHEELS = REPO / ".whl"
SITE = Path(tempfile.gettempdir()) / "metacurate-site"
OUT = REPO / "bench" / "out"
# What the GPU machine lacks, by module: the distribution carried for it (the version installed here).
CARRIED = {"open_clip": "open_clip_torch", "webdataset": "webdataset", "braceexpand": "braceexpand",
           "ftfy": "ftfy", "wcwidth": "wcwidth", "faiss": "faiss-cpu"}
TARGET_PYTHON = "3.12"  # the GPU machine's python3
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def download_wheels() -> None:
    """Here: fetch the carried distributions, at the versions installed here, as wheels for the GPU machine."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in CARRIED.values()]
    platforms = [argument for platform in PLATFORMS for argument in ("--platform", platform)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", TARGET_PYTHON, "--implementation", "cp", *platforms, "-d", str(WHEELS),
                    *pins], check=True)
    size = sum(path.stat().st_size for path in WHEELS.glob("*.whl")) / 2**20
    print(f"{WHEELS}: {', '.join(pins)} ({size:.0f} MiB)")


def install_missing() -> list[str]:
    """There: install, from .whl/, the carried packages this Python lacks; returns their names."""
    missing = [module for module in CARRIED if importlib.util.find_spec(module) is None]
    if missing:
        wanted = [CARRIED[module].replace("-", "_").lower() for module in missing]
        wheels = [str(path) for path in WHEELS.glob("*.whl") if path.name.split("-")[0].lower() in wanted]
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(SITE), *wheels], check=True)
        sys.path.insert(0, str(SITE))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")]))
        importlib.invalidate_caches()
    return missing


def web_like_jpegs(count: int, side: int = 256) -> list[bytes]:
    """The shipped CIFAR-10 photos upscaled to side px and re-encoded, repeated up to count."""
    from PIL import Image

    photos = []
    with tarfile.open(REPO / "data" / "demo_images.tar") as archive:
        for member in archive:
            if member.isfile():
                image = Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB")
                buffer = io.BytesIO()
                image.resize((side, side), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
                photos.append(buffer.getvalue())
    return [photos[index % len(photos)] for index in range(count)]


def bench_embedding(count: int, batch_size: int = 256, loaders: int | None = None) -> dict:
    from pipeline.semantic.embedding import EmbedTiming, default_loaders, embed_encoded, load_embedder

    blobs = web_like_jpegs(count)
    embedder = load_embedder("ViT-B-32")
    loaders = loaders or default_loaders(embedder.device)
    embed_encoded(embedder, blobs[:2 * batch_size], batch_size, loaders)  # warm-up
    timing = EmbedTiming()
    embed_encoded(embedder, blobs, batch_size, loaders, timing=timing)
    return {"model": "ViT-B-32", "device": embedder.device, "images": timing.images, "batch_size": batch_size,
            "loaders": loaders, "images_per_s": timing.images / timing.seconds, "data_wait_share": timing.wait_share}


def bench_semdedup_backends(count: int, clusters: int) -> dict:
    from bench.dedup import bench_semdedup

    gpu = bench_semdedup(count, clusters, backend="auto")
    cpu = bench_semdedup(count, clusters, backend="faiss-cpu")
    seconds = {name: sum(result[f"{step}_s"] for step in ("kmeans", "assign", "dedup"))
               for name, result in (("gpu", gpu), ("cpu", cpu))}
    return {"gpu": gpu, "faiss_cpu": cpu, "gpu_seconds": seconds["gpu"], "faiss_cpu_seconds": seconds["cpu"],
            "speedup": seconds["cpu"] / seconds["gpu"], "cpu_threads": os.cpu_count()}


def bench_score_filter_backends(count: int, clusters: int) -> dict:
    from bench.dedup import bench_score_filters

    gpu = bench_score_filters(count, clusters, backend="auto", threads=None)
    cpu = bench_score_filters(count, clusters, backend="faiss-cpu", threads=None)
    return {"gpu": gpu, "faiss_cpu": cpu, "assign_speedup": cpu["assign_s"] / gpu["assign_s"],
            "cpu_threads": os.cpu_count()}


def bench_trainer(samples: int, batch_size: int = 256, workers: int = 8) -> dict:
    from bench.train import bundled, open_clip_main, write_demo_shards

    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        (work / "shards").mkdir()
        pattern = write_demo_shards(work / "shards")
        ours = bundled(pattern, work, samples, batch_size, workers, model="ViT-B-32")
        theirs = open_clip_main(pattern, work, samples, batch_size, workers, bf16=True, model="ViT-B-32")
    ours_rate, theirs_rate = ours["samples"] / ours["wall_s"], theirs["samples"] / theirs["wall_s"]
    return {"model": "ViT-B-32", "precision": "bf16", "batch_size": batch_size, "workers": workers,
            "bundled": ours, "open_clip_train": theirs, "bundled_samples_per_s": ours_rate,
            "open_clip_samples_per_s": theirs_rate, "ratio": ours_rate / theirs_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--download-wheels", action="store_true", help="here: fetch the wheels into .whl/ and stop")
    parser.add_argument("--embed-images", type=int, default=20_000)
    parser.add_argument("--semdedup-count", type=int, default=1_000_000)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--train-samples", type=int, default=25_600)
    args = parser.parse_args()
    if args.download_wheels:
        download_wheels()
        return
    installed = install_missing()
    import torch

    started = time.perf_counter()
    results = {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               "torch": torch.__version__, "installed_from_wheels": installed}
    print(f"GPU: {results['gpu']}, torch {results['torch']}; installed from .whl/: {installed or 'nothing'}",
          flush=True)
    results["embedding"] = embedding = bench_embedding(args.embed_images)
    print(f"embedding: ViT-B-32 on {embedding['device']}, {embedding['images_per_s']:,.0f} images/s (goal >= 2,000), "
          f"waiting for decoded images {embedding['data_wait_share']:.1%} (goal < 10%)", flush=True)
    results["semdedup"] = dedup = bench_semdedup_backends(args.semdedup_count, args.clusters)
    print(f"SemDeDup of {args.semdedup_count:,} x 512: {dedup['gpu']['device']} {dedup['gpu_seconds']:.1f} s, "
          f"faiss-cpu ({dedup['cpu_threads']} cores) {dedup['faiss_cpu_seconds']:.1f} s: {dedup['speedup']:.1f}x "
          f"(goal >= 10x and < 60 s)", flush=True)
    results["score_filters"] = scoring = bench_score_filter_backends(args.semdedup_count, args.clusters)
    print(f"score filters, {args.semdedup_count:,} x 512: CLIP scores {scoring['gpu']['scores_per_s']:,.0f}/s; "
          f"assignment to {args.clusters} centroids {scoring['gpu']['backend']} "
          f"{scoring['gpu']['assignments_per_s']:,.0f}/s, faiss-cpu ({scoring['cpu_threads']} cores) "
          f"{scoring['faiss_cpu']['assignments_per_s']:,.0f}/s: {scoring['assign_speedup']:.1f}x", flush=True)
    results["trainer"] = trainer = bench_trainer(args.train_samples)
    print(f"trainer: ViT-B-32 bf16 batch 256, pipeline.train {trainer['bundled_samples_per_s']:,.0f} samples/s, "
          f"open_clip_train.main {trainer['open_clip_samples_per_s']:,.0f} samples/s: {trainer['ratio']:.2f}x "
          f"(goal >= 1.0x); waiting for data {trainer['bundled']['data_wait_fraction']:.1%} (goal < 5%)", flush=True)
    results["wall_s"] = time.perf_counter() - started
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {OUT / 'gpu.json'} ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
