"""Where SemDeDup's vector arithmetic runs: FAISS on a GPU, torch on a GPU, or FAISS on the CPU.

A CUDA machine may have torch but no faiss-gpu (and no package index to get it), so torch is a backend of
its own: spherical k-means, nearest-centroid assignment and within-cluster similarity are matrix products.
`choose_backend("auto")` takes faiss-gpu when FAISS sees a GPU, else torch when CUDA is available, else
faiss-cpu. Nothing here loads CUDA on a machine without a GPU: torch is asked only when it is installed,
and a CPU build of torch answers without touching CUDA.

Both backends start k-means from the same seeded sample of points and run the same Lloyd iterations
(centroids renormalized each time), so their results agree up to float rounding.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from pipeline.errors import UserInputError

BACKENDS = ("auto", "faiss", "faiss-cpu", "torch")
ROWS_PER_BLOCK = 8192  # rows multiplied at once against the centroids or a cluster, bounding memory


def _faiss():
    """The faiss module, or a clear error when neither FAISS build is installed."""
    try:
        import faiss
    except ImportError:
        raise UserInputError("FAISS is not installed: pip install -e '.[cpu]', or '.[gpu]' on a CUDA 12 machine "
                             "(or --backend torch)") from None
    return faiss


def faiss_gpus() -> int:
    """GPUs FAISS sees (0 with faiss-cpu, or with no FAISS at all)."""
    if importlib.util.find_spec("faiss") is None:
        return 0
    faiss = _faiss()
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def cuda_torch() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def initial_centroids(sample: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """k distinct points of the sample, drawn with the seed: where every backend's k-means starts."""
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(sample[np.sort(rng.choice(len(sample), clusters, replace=False))])


@dataclass(frozen=True)
class FaissBackend:
    gpu: bool

    @property
    def label(self) -> str:
        return "faiss-gpu" if self.gpu else "faiss-cpu"

    def kmeans(self, sample: np.ndarray, init: np.ndarray, niter: int) -> np.ndarray:
        faiss = _faiss()
        kmeans = faiss.Kmeans(sample.shape[1], len(init), niter=niter, spherical=True, gpu=self.gpu,
                              max_points_per_centroid=max(1, len(sample)))  # the sample is already drawn
        kmeans.train(np.ascontiguousarray(sample), init_centroids=np.ascontiguousarray(init))
        return kmeans.centroids

    def _index(self, reference: np.ndarray):
        faiss = _faiss()
        index = faiss.IndexFlatIP(reference.shape[1])
        if self.gpu:
            index = faiss.index_cpu_to_all_gpus(index)
        index.add(np.ascontiguousarray(reference, dtype=np.float32))
        return index

    def nearest(self, vectors: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        similarity, nearest = self._index(reference).search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
        return nearest[:, 0].astype(np.int32), similarity[:, 0]

    def close_pairs(self, ranked: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pair (earlier, later) of rows with cosine similarity above threshold. FAISS's GPU indexes have
        no range search, so with a GPU the cluster is multiplied in blocks on it by torch (a CUDA machine with
        faiss-gpu has CUDA torch); on the CPU a range search, whose memory grows with the close pairs, not with
        the square of the cluster."""
        if self.gpu and cuda_torch():
            return TorchBackend("cuda").close_pairs(ranked, threshold)
        faiss = _faiss()
        index = faiss.IndexFlatIP(ranked.shape[1])
        index.add(ranked)
        limits, similarity, neighbour = index.range_search(ranked, float(threshold))
        later = np.repeat(np.arange(len(ranked)), np.diff(limits).astype(np.int64))
        earlier = neighbour.astype(np.int64)
        keep = earlier < later
        return earlier[keep], later[keep], similarity[keep]


@dataclass(frozen=True)
class TorchBackend:
    device: str  # "cuda", "cuda:N" or "cpu" (the CPU is for tests that compare it with FAISS)

    @property
    def label(self) -> str:
        return f"torch-{self.device}"

    def _tensor(self, array: np.ndarray):
        import torch

        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

    def _nearest(self, vectors, reference):
        import torch

        best = [reference.new_zeros(0, dtype=torch.long)], [reference.new_zeros(0)]
        for start in range(0, len(vectors), ROWS_PER_BLOCK):
            similarity, index = (vectors[start:start + ROWS_PER_BLOCK] @ reference.T).max(dim=1)
            best[0].append(index)
            best[1].append(similarity)
        return torch.cat(best[0]), torch.cat(best[1])

    def kmeans(self, sample: np.ndarray, init: np.ndarray, niter: int) -> np.ndarray:
        import torch

        points, centroids = self._tensor(sample), self._tensor(init)
        for _ in range(niter):
            assigned, _ = self._nearest(points, centroids)
            sums = torch.zeros_like(centroids).index_add_(0, assigned, points)
            counts = torch.bincount(assigned, minlength=len(centroids))
            moved = sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-12)
            centroids = torch.where((counts > 0)[:, None], moved, centroids)  # an emptied cluster stays put
        return centroids.cpu().numpy()

    def nearest(self, vectors: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index, similarity = self._nearest(self._tensor(vectors), self._tensor(reference))
        return index.cpu().numpy().astype(np.int32), similarity.cpu().numpy()

    def close_pairs(self, ranked: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        rows = self._tensor(ranked)
        found = [[], [], []]
        for start in range(0, len(rows), ROWS_PER_BLOCK):
            similarity = rows[start:start + ROWS_PER_BLOCK] @ rows.T
            later, earlier = torch.nonzero(similarity > threshold, as_tuple=True)
            values = similarity[later, earlier]
            later = later + start
            keep = earlier < later
            for bucket, part in zip(found, (earlier[keep], later[keep], values[keep])):
                bucket.append(part.cpu().numpy())
        earlier, later, similarity = (np.concatenate(parts) if parts else np.zeros(0) for parts in found)
        return earlier.astype(np.int64), later.astype(np.int64), similarity.astype(np.float32)


def choose_backend(name: str = "auto"):
    """The backend asked for; "auto": faiss-gpu, else CUDA torch, else faiss-cpu."""
    if name == "faiss-cpu":  # the reference the GPU backends are measured against
        return FaissBackend(gpu=False)
    if name == "torch":
        return TorchBackend("cuda" if cuda_torch() else "cpu")
    if name == "faiss":
        return FaissBackend(gpu=faiss_gpus() > 0)
    if faiss_gpus() > 0:
        return FaissBackend(gpu=True)
    if cuda_torch():
        return TorchBackend("cuda")
    return FaissBackend(gpu=False)
