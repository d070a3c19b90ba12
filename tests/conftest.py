"""Shared fixtures: one local SparkSession per test session, the shipped vocabulary, the real captions."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
LAION = SHARED / "captions" / "laion_style_10k.parquet"
CC3M = SHARED / "captions" / "cc3m_val.tsv"
VOCAB = REPO / "metadata" / "vocab.txt.gz"

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset imports albumentations, which checks online


def real_captions() -> list[str]:
    """Every caption of both real caption files (the laion file has a few nulls, left out here)."""
    if not LAION.exists():
        pytest.skip("../shared/data is not beside the repo")
    laion = [text for text in pq.read_table(LAION, columns=["TEXT"]).column("TEXT").to_pylist() if text]
    with open(CC3M, encoding="utf-8") as lines:
        cc3m = [line.rstrip("\n").split("\t")[0] for line in lines]
    return laion + cc3m


@pytest.fixture(scope="session")
def captions() -> list[str]:
    return real_captions()


@pytest.fixture(scope="session")
def entries() -> list[str]:
    from pipeline.vocab.entries import load_entries

    return load_entries(VOCAB)


@pytest.fixture(scope="session")
def spark():
    from pipeline.spark.session import get_spark

    session = get_spark("metacurate-tests", "local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def cifar_images(tmp_path_factory) -> dict[str, Path]:
    """The first 40 CIFAR-10 training JPEGs, as served names -> files."""
    archive = SHARED / "images" / "cifar10_train.tar.gz"
    if not archive.exists():
        pytest.skip("../shared/data is not beside the repo")
    from pipeline.experiments.image_server import unpack_jpegs

    return unpack_jpegs(archive, tmp_path_factory.mktemp("cifar"), 40)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, str]:
    """The offline image demo (jobs/demo_images.py via spark-submit) run once: its folder and stdout."""
    from test_jobs import submit

    out = tmp_path_factory.mktemp("demo") / "run"
    result = submit(str(Path(__file__).resolve().parent.parent / "jobs" / "demo_images.py"), "--out", str(out))
    return out, result.stdout


@pytest.fixture(scope="session")
def demo_training(demo_run, tmp_path_factory) -> Path:
    """A short training run on the demo shards (10 steps) that measured zero-shot twice while training."""
    from pipeline.clip.training.loop import train
    from pipeline.clip.training.options import TrainConfig, ZeroShotEval

    out = tmp_path_factory.mktemp("train") / "tiny"
    labelled = REPO / "data" / "demo_images.tar"  # <split>/<class>/<file>: a small labelled set
    train(TrainConfig(shards=(str(demo_run[0] / "shards"),), samples=320, batch_size=32, warmup=2, workers=0,
                      log_every=2), out,
          zero_shot=ZeroShotEval(REPO / "data" / "cifar10_classes.txt", labelled, every=5))
    return out
