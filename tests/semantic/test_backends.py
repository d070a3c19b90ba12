"""SemDeDup's backends: torch's matrix products give FAISS's results up to float rounding; a machine without
a GPU picks faiss-cpu without loading CUDA; the GPU backends run where a GPU is (skipped elsewhere)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pipeline.semantic.backends import FaissBackend, TorchBackend, cuda_torch, faiss_gpus
from pipeline.semantic.semdedup import assign, normalized, semdedup, spherical_kmeans
from tests.helpers import planted

FAISS_CPU, TORCH_CPU = FaissBackend(gpu=False), TorchBackend("cpu")


@pytest.fixture(scope="module")
def unit():
    vectors, uids, _ = planted(count=6_000, copies=600, dim=48)
    return normalized(vectors, uids), uids


def test_torch_and_faiss_fit_the_same_centroids_and_assign_alike(unit):
    vectors, _ = unit
    by_faiss = spherical_kmeans(vectors, 12, seed=3, backend=FAISS_CPU)
    by_torch = spherical_kmeans(vectors, 12, seed=3, backend=TORCH_CPU)
    assert np.allclose(by_faiss, by_torch, atol=1e-4)
    faiss_cluster, faiss_similarity = assign(vectors, by_faiss, FAISS_CPU)
    torch_cluster, torch_similarity = assign(vectors, by_faiss, TORCH_CPU)
    assert np.mean(faiss_cluster == torch_cluster) > 0.999
    same = faiss_cluster == torch_cluster
    assert np.allclose(faiss_similarity[same], torch_similarity[same], atol=1e-5)


def test_torch_and_faiss_remove_the_same_duplicates(unit):
    vectors, uids = unit
    by_faiss = semdedup(vectors, uids, eps=(0.02, 0.1), clusters=12, seed=3, backend="faiss")
    by_torch = semdedup(vectors, uids, eps=(0.02, 0.1), clusters=12, seed=3, backend="torch")
    assert (by_faiss.device, by_torch.device) == ("faiss-cpu", "torch-cpu")
    for eps in (0.02, 0.1):
        removed = [{row["uid"] for row in result.table.to_pylist() if row["eps"] == eps and row["status"] == "removed"}
                   for result in (by_faiss, by_torch)]
        assert len(removed[0] ^ removed[1]) <= 0.001 * len(uids) and len(removed[0]) >= 550


def test_without_a_gpu_auto_is_faiss_cpu_and_cuda_is_never_initialised():
    if faiss_gpus() or cuda_torch():
        pytest.skip("this machine has a GPU: auto picks it (see the GPU tests)")
    probe = ("import torch; from pipeline.semantic.backends import choose_backend; "
             "print(choose_backend('auto').label, torch.cuda.is_initialized())")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["faiss-cpu", "False"]


needs_gpu = pytest.mark.skipif(not (faiss_gpus() or cuda_torch()),
                               reason="no GPU here: neither FAISS nor torch sees one")


@needs_gpu
def test_the_gpu_backend_removes_what_faiss_cpu_removes(unit):
    vectors, uids = unit
    on_gpu = semdedup(vectors, uids, eps=0.05, clusters=12, seed=3)
    on_cpu = semdedup(vectors, uids, eps=0.05, clusters=12, seed=3, backend="faiss-cpu")
    assert on_gpu.device in ("faiss-gpu", "torch-cuda") and on_cpu.device == "faiss-cpu"
    removed = [{row["uid"] for row in result.table.to_pylist() if row["status"] == "removed"}
               for result in (on_gpu, on_cpu)]
    assert len(removed[0] ^ removed[1]) <= 0.001 * len(uids)


@needs_gpu
def test_torch_on_cuda_agrees_with_faiss_cpu(unit):
    if not cuda_torch():
        pytest.skip("torch sees no CUDA device")
    vectors, _ = unit
    centroids = spherical_kmeans(vectors, 12, seed=3, backend=FAISS_CPU)
    assert np.allclose(spherical_kmeans(vectors, 12, seed=3, backend=TorchBackend("cuda")), centroids, atol=1e-3)
