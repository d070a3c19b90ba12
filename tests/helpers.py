"""What the tests share besides fixtures: where the real data is, how a job is submitted, small builders.

Test modules import from here (or take conftest's fixtures), never from one another.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline import REPO
from pipeline.image.download import DownloadOptions

SHARED = REPO.parent / "shared" / "data"
LAION = SHARED / "captions" / "laion_style_10k.parquet"
CC3M = SHARED / "captions" / "cc3m_val.tsv"
VOCAB = REPO / "metadata" / "vocab.txt.gz"
# The reason every real-data test skips with when ../shared/data is missing; conftest counts them aloud.
NO_SHARED_DATA = "real data: ../shared/data is not beside the repo"

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset imports albumentations, which checks online

BIN = Path(sys.executable).parent
SUBMIT = [str(BIN / "spark-submit"), "--conf", "spark.log.level=WARN", "--conf", "spark.ui.enabled=false"]
ENV = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
       "SPARK_LOCAL_IP": "127.0.0.1"}
# img2dataset settings of the download tests: small shards, so a run has several.
OPTIONS = DownloadOptions(processes_count=2, thread_count=8, timeout=2, number_sample_per_shard=16)


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


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
