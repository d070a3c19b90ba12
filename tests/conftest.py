"""Shared fixtures: one local SparkSession per test session, the shipped vocabulary, the real captions, the
offline image demo, a standalone Spark cluster on 127.0.0.1. Also the suite's own rules: a test that uses a
fixture which starts Spark, a cluster or a whole demo run is marked slow, and skipped real-data tests are
counted in the summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.experiments.longtail import free_port
from tests.helpers import (
    BIN,
    CIFAR_TEST_PER_CLASS,
    ENV,
    LEARNS,
    NO_SHARED_DATA,
    OPTIONS,
    REPO,
    SHARED,
    VOCAB,
    class_balanced_cifar,
    real_captions,
    require_shared_data,
    submit,
)

# Fixtures that start Spark (a session, spark-submit, a cluster) or run a whole demo: their users are slow tests.
SLOW_FIXTURES = {"spark", "demo_run", "demo_training", "standalone_cluster", "cifar_checkpoint"}


def pytest_collection_modifyitems(items):
    without_data = not SHARED.exists()
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
        if without_data and item.get_closest_marker("real_data"):
            item.add_marker(pytest.mark.skip(reason=NO_SHARED_DATA))


def pytest_terminal_summary(terminalreporter):
    """A green run without ../shared/data must not pass for a full one: say how many real-data tests skipped."""
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if NO_SHARED_DATA in str(report.longrepr)]
    if skipped:
        terminalreporter.write_sep("!", f"{len(skipped)} real-data tests SKIPPED: {NO_SHARED_DATA}", red=True,
                                   bold=True)


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
def cifar_test_subset(tmp_path_factory) -> Path:
    """The first CIFAR_TEST_PER_CLASS photos of each class of CIFAR-10's test set, in its layout
    (test/<class>/<file>): zero-shot evaluation of all 10,000 is most of a small training run's time."""
    source_path = SHARED / "images" / "cifar10_test.tar.gz"
    require_shared_data(source_path)
    out = tmp_path_factory.mktemp("cifar_test") / "test.tar"
    taken: dict[str, int] = {}
    with tarfile.open(source_path) as source, tarfile.open(out, "w") as subset:
        for member in source:
            label = member.name.split("/")[1] if member.isfile() else ""
            if label and taken.get(label, 0) < CIFAR_TEST_PER_CLASS:
                taken[label] = taken.get(label, 0) + 1
                subset.addfile(member, source.extractfile(member))
    return out


@pytest.fixture(scope="session")
def cifar_images(tmp_path_factory) -> dict[str, Path]:
    """The first 40 CIFAR-10 training JPEGs, as served names -> files."""
    archive = SHARED / "images" / "cifar10_train.tar.gz"
    require_shared_data(archive)
    from pipeline.experiments.image_server import unpack_jpegs

    return unpack_jpegs(archive, tmp_path_factory.mktemp("cifar"), 40)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, str]:
    """The offline image demo (jobs/demo_images.py via spark-submit) run once: its folder and stdout."""
    out = tmp_path_factory.mktemp("demo") / "run"
    result = submit(str(REPO / "jobs" / "demo_images.py"), "--out", str(out))
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


@pytest.fixture(scope="session")
def cifar_checkpoint(tmp_path_factory) -> tuple[Path, dict, list[Path]]:
    """A tiny CLIP the trainer trained (300 steps of 32) on img2dataset's shards of 600 CIFAR-10 training photos,
    60 a class, each captioned with its class: the training folder, its summary and the shards."""
    import dataclasses

    from pipeline.clip.training.loop import train
    from pipeline.clip.training.options import TrainConfig
    from pipeline.experiments.image_server import ImageServer
    from pipeline.image.download import run_download, selection_from_urls

    folder = tmp_path_factory.mktemp("cifar-checkpoint")
    files = class_balanced_cifar(folder / "photos", per_class=60)
    names = sorted(files)
    with ImageServer(files) as server:
        selection_from_urls(folder / "run", [server.url("img", name) for name in names],
                            [f"a photo of a {name.split('_')[1]} I took" for name in names])
        # 150 a shard, not OPTIONS' 16: each img2dataset shard costs about a second more here, whatever its size
        run_download(folder / "run", dataclasses.replace(OPTIONS, number_sample_per_shard=150))
    tars = sorted((folder / "run" / "download").glob("*.tar"))
    summary = train(TrainConfig(shards=tuple(str(path) for path in tars), **{**LEARNS, "workers": 0}),
                    folder / "train")
    return folder / "train", summary, tars


@pytest.fixture
def standalone_cluster(tmp_path):
    port, ui, worker_ui = free_port(), free_port(), free_port()
    spark_class = str(BIN / "spark-class")
    env = {**ENV, "SPARK_LOG_DIR": str(tmp_path), "SPARK_WORKER_DIR": str(tmp_path / "work")}
    master = subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(ui)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    worker = subprocess.Popen([spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                               "--cores", "2", "--memory", "2g", "--webui-port", str(worker_ui),
                               f"spark://127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as reply:
                    if json.load(reply).get("aliveworkers", 0) >= 1:
                        break
            except (OSError, ValueError):  # not listening yet, or still starting: an HTML page, not JSON
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("the standalone worker did not register with the master")
        yield f"spark://127.0.0.1:{port}", ui
    finally:
        for process in (worker, master):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
