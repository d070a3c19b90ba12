"""Benchmarks of the image side, each measured next to its baseline in the same run.

    make bench            (python -m bench.images [--images 3000])

- download: the download stage vs a plain img2dataset run on the same url list, same options, same server;
- validation: decode + limits + sha256 + pHash, images/s on one core, over CIFAR-10 and UKBench files;
- the NSFW filter: scores/s on one core over UKBench's 640x480 photos, and the share of real photos flagged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.experiments.image_server import SERVED_FROM, ImageServer, unpack_jpegs
from pipeline.image.check import ImageLimits, inspect_image
from pipeline.image.download import DownloadOptions, img2dataset_arguments, run_download, selection_from_urls
from pipeline.image.guarded_downloader import guarded_img2dataset

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "bench" / "out"


def plain_img2dataset(urls: list[str], work: Path, options: DownloadOptions, guarded: bool = False) -> float:
    """Wall seconds of img2dataset alone on the url list, with the same options (through the network guard, when
    asked: what the address check costs)."""
    from img2dataset import download

    listing = work / "plain-urls.parquet"
    pq.write_table(pa.table({"url": urls, "caption": [f"caption {i}" for i in range(len(urls))]}), listing)
    output = work / "plain"
    shutil.rmtree(output, ignore_errors=True)
    arguments, policy = img2dataset_arguments(options)
    started = time.perf_counter()
    with guarded_img2dataset(policy) if guarded else contextlib.nullcontext():
        download(url_list=str(listing), output_folder=str(output), input_format="parquet",
                 output_format="webdataset", url_col="url", caption_col="caption", compute_hash="sha256", **arguments)
    return time.perf_counter() - started


def stage_download(urls: list[str], work: Path, options: DownloadOptions) -> float:
    """Wall seconds of the download stage (url checks, img2dataset, status table, manifest)."""
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    selection_from_urls(run, urls)
    started = time.perf_counter()
    manifest = run_download(run, options)
    elapsed = time.perf_counter() - started
    assert manifest["rows_out"] == len(urls), manifest["rejected"]
    return elapsed


def bench_download(files: dict[str, Path], work: Path) -> dict:
    options = DownloadOptions(processes_count=2, thread_count=16, number_sample_per_shard=1000,
                              allow_network=SERVED_FROM)
    with ImageServer(files) as server:
        urls = [server.url("img", name) for name in files]
        plain, guarded, ours = [], [], []
        for _ in range(4):  # interleaved, so a slow moment of the machine does not fall on one side only
            plain.append(plain_img2dataset(urls, work, options))
            guarded.append(plain_img2dataset(urls, work, options, guarded=True))
            ours.append(stage_download(urls, work, options))
    plain, guarded, ours = min(plain), min(guarded), min(ours)
    return {"images": len(urls), "plain_img2dataset_images_per_s": len(urls) / plain,
            "guarded_img2dataset_images_per_s": len(urls) / guarded, "address_check_cost": guarded / plain - 1,
            "download_stage_images_per_s": len(urls) / ours, "ratio": plain / ours}


def bench_validation(files: list[Path]) -> dict:
    payloads = [path.read_bytes() for path in files]
    limits = ImageLimits(min_side=0, max_aspect=float("inf"))
    started = time.perf_counter()
    for payload in payloads:
        inspect_image(payload, limits)
    return {"images": len(payloads), "images_per_s_one_core": len(payloads) / (time.perf_counter() - started)}


def bench_safety(cifar: list[Path], repeats: int = 5) -> dict:
    """NSFW scores/s on one core over UKBench's 640x480 photos, and the share of real photos (those photos and
    CIFAR-10's) the default threshold flags: none of them is unsafe, so each flag is a false positive."""
    from pipeline.image.safety import NSFW_THRESHOLD, load_detector, nsfw_score

    photos = sorted((SHARED / "dedup" / "ukbench" / "base").glob("*.jpg"))
    detector = load_detector(threads=1)
    blobs = [path.read_bytes() for path in photos] * repeats
    started = time.perf_counter()
    for blob in blobs:
        nsfw_score(detector, blob)
    rate = len(blobs) / (time.perf_counter() - started)
    scores = [nsfw_score(detector, path.read_bytes()) for path in photos + cifar]
    flagged = sum(score >= NSFW_THRESHOLD for score in scores)
    return {"ukbench_images_per_s_one_core": rate, "real_photos": len(scores), "flagged": flagged,
            "false_positive_rate": flagged / len(scores), "threshold": NSFW_THRESHOLD}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        files = unpack_jpegs(SHARED / "images" / "cifar10_train.tar.gz", work, args.images)
        download = bench_download(files, work)
        print(f"download of {download['images']:,} CIFAR-10 images from 127.0.0.1, 2 processes x 16 threads:")
        print(f"  plain img2dataset {download['plain_img2dataset_images_per_s']:,.0f} images/s, download stage "
              f"{download['download_stage_images_per_s']:,.0f} images/s: {download['ratio']:.2f}x (goal >= 0.9x)")
        print(f"  img2dataset through the network guard {download['guarded_img2dataset_images_per_s']:,.0f} "
              f"images/s: the address check costs {download['address_check_cost']:+.1%} (goal < 2%)")
        ukbench = sorted(path for path in (SHARED / "dedup" / "ukbench").rglob("*") if path.is_file())
        cifar = bench_validation(list(files.values()))
        photos = bench_validation(ukbench)
        safety = bench_safety(list(files.values()))
    print("validation (decode, limits, sha256, pHash), one core:")
    print(f"  CIFAR-10 32x32 JPEGs: {cifar['images_per_s_one_core']:,.0f} images/s; "
          f"UKBench 640x480 photos and others: {photos['images_per_s_one_core']:,.0f} images/s")
    print(f"NSFW filter (NudeNet 320n, one core): {safety['ukbench_images_per_s_one_core']:,.1f} UKBench 640x480 "
          f"photos/s; {safety['flagged']} of {safety['real_photos']:,} real photos (UKBench, CIFAR-10) flagged at "
          f"{safety['threshold']}: false-positive rate {safety['false_positive_rate']:.2%}")
    OUT.mkdir(parents=True, exist_ok=True)
    results = {"download": download, "validation_cifar": cifar, "validation_ukbench": photos, "safety": safety}
    (OUT / "images.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {OUT / 'images.json'}")


if __name__ == "__main__":
    main()
