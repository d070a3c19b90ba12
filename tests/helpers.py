"""What the tests share besides fixtures: where the real data is, how a job is submitted, small builders.

Test modules import from here (or take conftest's fixtures), never from one another.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline import REPO
from pipeline.experiments.image_server import SERVED_FROM
from pipeline.image.download import DownloadOptions
from pipeline.text.token_automaton import CACHE_ENV

SHARED = REPO.parent / "shared" / "data"
CIFAR_TEST_PER_CLASS = 200  # photos a class in the tests' CIFAR-10 test subset (of 1,000 a class)
LAION = SHARED / "captions" / "laion_style_10k.parquet"
CC3M = SHARED / "captions" / "cc3m_val.tsv"
VOCAB = REPO / "metadata" / "vocab.txt.gz"
# The reason every real-data test skips with when ../shared/data is missing; conftest counts them aloud.
NO_SHARED_DATA = "real data: ../shared/data is not beside the repo"

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset imports albumentations, which checks online
# Compiled matchers cache their automata here, not in the user's cache; set before any Spark or job starts, so
# that their workers inherit it. Entries are keyed by content, so a later run reuses them.
os.environ.setdefault(CACHE_ENV, str(Path(tempfile.gettempdir()) / f"metacurate-tests-{os.getuid()}"))

BIN = Path(sys.executable).parent
SUBMIT = [str(BIN / "spark-submit"), "--conf", "spark.log.level=WARN", "--conf", "spark.ui.enabled=false"]
ENV = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
       "SPARK_LOCAL_IP": "127.0.0.1"}
# img2dataset settings of the download tests: small shards, so a run has several. The image server's /slow/
# route never answers before the timeout, so the timeout only has to spare real images on a busy machine.
LOOPBACK = ("--allow-network", *SERVED_FROM)  # what a download job needs to reach the test image server
OPTIONS = DownloadOptions(processes_count=2, thread_count=8, timeout=5, number_sample_per_shard=16,
                          allow_network=SERVED_FROM)
# The training runs that must show learning: 300 steps of 32 (chance loss ln 32 = 3.47)
LEARNS = dict(samples=9600, batch_size=32, lr=1e-3, warmup=20, workers=1, log_every=25, checkpoint_every=100)


def require_shared_data(path: Path = SHARED) -> Path:
    if not Path(path).exists():
        pytest.skip(NO_SHARED_DATA)
    return Path(path)


def real_captions() -> list[str]:
    """Every caption of both real caption files (the laion file has a few nulls, left out here)."""
    require_shared_data(LAION)
    laion = [text for text in pq.read_table(LAION, columns=["TEXT"]).column("TEXT").to_pylist() if text]
    with open(CC3M, encoding="utf-8") as lines:
        cc3m = [line.rstrip("\n").split("\t")[0] for line in lines]
    return laion + cc3m


def submit(*args, check=True):
    result = subprocess.run(SUBMIT + list(args), env=ENV, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr[-3000:])
    return result


def run_job_here(job: str, *args: str) -> tuple[int, str]:
    """jobs/<job>.py run in this process on the tests' Spark session, as spark-submit runs it but without a
    new JVM (each spark-submit costs about 20 s here): its exit status and its stdout and stderr together.
    spark-submit itself is tested on the text jobs (tests/cli), the download job and the demo jobs."""
    argv, output = sys.argv, io.StringIO()
    sys.argv = [str(REPO / "jobs" / f"{job}.py"), *args]
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            runpy.run_path(sys.argv[0], run_name="__main__")
        status = 0
    except SystemExit as finished:
        status = finished.code or 0
    finally:
        sys.argv = argv
    return status, output.getvalue()


def planted(count: int = 20_000, copies: int = 2_000, dim: int = 64, seed: int = 0):
    """Random unit vectors plus near-duplicates of some of them (a little noise, normalized)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(count - copies, dim)).astype(np.float32)
    sources = rng.choice(len(base), copies, replace=False)
    copies_ = base[sources] + rng.normal(scale=0.08, size=(copies, dim)).astype(np.float32) * np.linalg.norm(
        base[sources], axis=1, keepdims=True) / np.sqrt(dim)
    vectors = np.concatenate([base, copies_])
    uids = [f"u{index:05d}" for index in range(len(vectors))]
    return vectors, uids, sources


def open_when_peer_opens(fifo: Path, mode: str, process: subprocess.Popen) -> IO:
    """Open our end of a named pipe; return once the process under test has opened its end, the event a kill
    test waits for (the process then blocks on the pipe until we write, read or close). Fails instead of
    hanging when the process ends first."""
    opened: list[IO] = []
    done = threading.Event()

    def open_end() -> None:
        opened.append(open(fifo, mode))
        done.set()

    threading.Thread(target=open_end, daemon=True).start()
    while not done.wait(0.1):
        if process.poll() is not None:
            raise AssertionError(f"the process ended (status {process.returncode}) before it opened {fifo}")
    return opened[0]


def write_demo_shards(folder: Path, count: int, per_shard: int, damaged: dict[int, str] | None = None) -> list[str]:
    """Webdataset shards of the demo CIFAR images with class captions and a keep_prob of 0.5; damaged: sample
    index -> 'image' (corrupt) or 'caption' (missing)."""
    import webdataset

    damaged = damaged or {}
    with tarfile.open(REPO / "data" / "demo_images.tar") as archive:
        members = [member for member in archive.getmembers() if member.isfile()][:count]
        samples = [(archive.extractfile(member).read(), member.name.split("/")[1]) for member in members]
    paths = []
    for shard in range(0, count, per_shard):
        path = folder / f"{shard // per_shard:05d}.tar"
        with webdataset.TarWriter(str(path)) as writer:
            for index in range(shard, min(shard + per_shard, count)):
                image, label = samples[index]
                sample = {"__key__": f"{index:06d}", "jpg": image, "txt": f"a photo of a {label}",
                          "json": json.dumps({"uid": f"{index:032x}", "keep_prob": 0.5})}
                if damaged.get(index) == "image":
                    sample["jpg"] = image[:30]
                if damaged.get(index) == "caption":
                    del sample["txt"]
                writer.write(sample)
        paths.append(str(path))
    return paths


def metaclip_reference(text: str, entries: list[str]) -> list[int]:
    """MetaCLIP v1's substr_matching, written plainly: spacing, then a loop over every entry."""
    spaced = f" {text} "
    for punct in [",", ".", ";", ":", "?", "!", "`"]:
        spaced = spaced.replace(punct, f" {punct} ")
    for char in ["\t", "\n", "\r"]:
        spaced = spaced.replace(char, " ")
    return [entry_id for entry_id, entry in enumerate(entries) if f" {entry} " in spaced]


def class_balanced_cifar(folder: Path, per_class: int, skip: int = 0, classes: tuple[str, ...] = ()) -> dict[str, Path]:
    """`per_class` CIFAR-10 training photos of each class (of `classes`, or all ten), after the first `skip` of
    each, as folder/train_<class>_<file>.jpg: served names -> files."""
    folder.mkdir(parents=True, exist_ok=True)
    files, seen = {}, {}
    with tarfile.open(require_shared_data(SHARED / "images" / "cifar10_train.tar.gz")) as archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".jpg"):
                label = member.name.split("/")[1]
                if classes and label not in classes:
                    continue
                seen[label] = seen.get(label, 0) + 1
                if skip < seen[label] <= skip + per_class:
                    path = folder / member.name.replace("/", "_")
                    path.write_bytes(archive.extractfile(member).read())
                    files[path.name] = path
    return files
