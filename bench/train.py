"""Benchmark of the bundled trainer against open_clip's own training entry point, side by side.

    make bench            (python -m bench.train [--samples 19200] [--batch-size 64] [--workers 2])

Both train `metacurate-tiny` in fp32 on CPU (bf16 on a GPU) on the same shards (the CIFAR-10 demo images
written as webdataset shards), with the same batch size, loader workers, samples and learning-rate schedule;
each figure is samples over the wall time of the whole training call (model creation included, the same
for both). Also reports the bundled trainer's share of step time spent waiting for data.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
SHARDS = 8


def write_demo_shards(folder: Path) -> str:
    """The 500 shipped CIFAR-10 images as 8 webdataset shards with class captions; returns a brace pattern."""
    import webdataset

    with tarfile.open(REPO / "data" / "demo_images.tar") as archive:
        samples = [(archive.extractfile(member).read(), member.name.split("/")[1])
                   for member in archive.getmembers() if member.isfile()]
    for shard in range(SHARDS):
        with webdataset.TarWriter(str(folder / f"{shard:05d}.tar")) as writer:
            for index in range(shard, len(samples), SHARDS):
                image, label = samples[index]
                writer.write({"__key__": f"{index:06d}", "jpg": image, "txt": f"a photo of a {label}"})
    return str(folder / f"{{00000..{SHARDS - 1:05d}}}.tar")


def bundled(pattern: str, work: Path, samples: int, batch_size: int, workers: int,
            model: str = "metacurate-tiny") -> dict:
    from pipeline.clip.training.loop import train
    from pipeline.clip.training.options import TrainConfig

    shutil.rmtree(work / "bundled", ignore_errors=True)
    config = TrainConfig(shards=(pattern,), model=model, samples=samples, batch_size=batch_size, workers=workers,
                         lr=1e-3, warmup=10, checkpoint_every=10**9, log_every=10)
    started = time.perf_counter()
    summary = train(config, work / "bundled")
    return {"wall_s": time.perf_counter() - started, "samples": summary["samples_seen"],
            "data_wait_fraction": summary["data_wait_fraction"], "device": summary["device"]}


def open_clip_main(pattern: str, work: Path, samples: int, batch_size: int, workers: int, bf16: bool,
                   model: str = "metacurate-tiny") -> dict:
    from pipeline.clip.models import _register_project_configs
    from pipeline.clip.torch_compat import prepare_torchvision

    prepare_torchvision()
    _register_project_configs()
    import open_clip_train.data
    from open_clip_train.main import main
    from webdataset.tariterators import tar_file_expander

    # open_clip_train 3.3 trips on the end-of-tar marker webdataset >= 0.2.100 yields ({} without "fname");
    # turning the marker off is the only change to its loader
    open_clip_train.data.tar_file_expander = functools.partial(tar_file_expander, eof_value=None)

    shutil.rmtree(work / "open_clip", ignore_errors=True)
    started = time.perf_counter()
    main(["--train-data", pattern, "--dataset-type", "webdataset", "--train-num-samples", str(samples),
          "--batch-size", str(batch_size), "--workers", str(workers), "--model", model,
          "--epochs", "1", "--lr", "1e-3", "--warmup", "10", "--precision", "amp_bf16" if bf16 else "fp32",
          "--logs", str(work / "open_clip"), "--name", "bench", "--save-frequency", "0", "--seed", "0",
          "--log-every-n-steps", "10", "--report-to", ""])
    return {"wall_s": time.perf_counter() - started, "samples": samples}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=19_200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        (work / "shards").mkdir()
        pattern = write_demo_shards(work / "shards")
        ours = bundled(pattern, work, args.samples, args.batch_size, args.workers)
        theirs = open_clip_main(pattern, work, args.samples, args.batch_size, args.workers, torch.cuda.is_available())
    ours_rate, theirs_rate = ours["samples"] / ours["wall_s"], theirs["samples"] / theirs["wall_s"]
    print(f"training metacurate-tiny on {ours['device']}, batch {args.batch_size}, {args.workers} loader workers, "
          f"{args.samples:,} samples:")
    print(f"  pipeline.train {ours_rate:,.0f} samples/s, open_clip_train.main {theirs_rate:,.0f} samples/s: "
          f"{ours_rate / theirs_rate:.2f}x (goal >= 1.0x); waiting for data {ours['data_wait_fraction']:.1%} "
          f"of step time")
    OUT.mkdir(parents=True, exist_ok=True)
    results = {"bundled": ours, "open_clip_train": theirs, "ratio": ours_rate / theirs_rate,
               "batch_size": args.batch_size, "workers": args.workers}
    (OUT / "train.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {OUT / 'train.json'}")


if __name__ == "__main__":
    main()
