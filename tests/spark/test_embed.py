"""The embed stage over downloaded shards: float16 vectors per uid, a corrupt image recorded as a reject; GPUs
asked per task only where the executors have them."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pyarrow.parquet as pq

from pipeline.experiments.image_server import ImageServer
from pipeline.image.download import run_download, selection_from_urls
from pipeline.run.directory import REJECTS
from pipeline.semantic.embedding import EmbedConfig
from pipeline.spark.embed import EXECUTOR_GPUS, _assigned_gpu, gpu_task_profile, run_embed
from tests.helpers import OPTIONS


def corrupt_first_image(tar_path):
    """Rewrite a shard with its first image's bytes cut short, as a damaged disk or copy would."""
    with tarfile.open(tar_path) as tar:
        members = [(member, tar.extractfile(member).read()) for member in tar]
    with tarfile.open(tar_path, "w") as tar:
        damaged = False
        for member, data in members:
            if member.name.endswith(".jpg") and not damaged:
                data, damaged = data[:20], member.name.split(".")[0]
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return damaged


def test_embed_writes_unit_vectors_per_uid_and_rejects_a_corrupt_image(spark, tmp_path, cifar_images):
    with ImageServer(cifar_images) as server:
        uids = selection_from_urls(tmp_path, [server.url("img", name) for name in cifar_images])
        run_download(tmp_path, OPTIONS)
    damaged_key = corrupt_first_image(tmp_path / "download" / "00000.tar")
    manifest = run_embed(spark, tmp_path, EmbedConfig(batch_size=16))
    assert manifest["rows_in"] == len(uids) == manifest["rows_out"] + 1
    assert manifest["rejected"] == {"undecodable": 1} and manifest["dim"] == 128 and manifest["device"] == ["cpu"]
    table = pq.read_table(tmp_path / "embed")
    assert sorted(table.column("uid").to_pylist() + [pq.read_table(tmp_path / "embed" / REJECTS)
                                                      .column("uid")[0].as_py()]) == sorted(uids)
    vectors = np.array(table.column("image").to_pylist(), dtype=np.float32)
    assert vectors.shape == (len(uids) - 1, 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-2)
    assert damaged_key


def test_embed_tasks_ask_for_a_gpu_only_where_executors_have_them():
    assert gpu_task_profile({}.get) is None
    assert gpu_task_profile({EXECUTOR_GPUS: "0"}.get) is None
    profile = gpu_task_profile({EXECUTOR_GPUS: "1"}.get)
    assert set(profile.taskResources) == {"gpu"} and profile.taskResources["gpu"].amount == 1.0
    assert profile.executorResources == {}  # the executors' own GPU amount stays what the job gave them


def test_outside_a_spark_task_no_gpu_is_assigned():
    assert _assigned_gpu() is None
