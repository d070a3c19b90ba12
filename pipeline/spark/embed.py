"""Spark binding of embedding: one task per downloaded shard writes that shard's embeddings.

Each Python worker loads the model once. When the executors have GPUs (README: GPUs), the embed tasks ask for
one each (a stage-level resource profile), so each GPU serves one task at a time, and load the model on the GPU
Spark assigned them; else on the GPU or CPU they find.
Loader threads decode a shard's images ahead of the model; a task embeds images and captions in batches and
writes `DIR/embed/part-NNNNN.parquet` (uid, image and text as float16 vectors) itself;
undecodable images go to `DIR/embed/_rejects`. Only counts travel back to the driver.
"""

from __future__ import annotations

import tarfile
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from pipeline.image.download import finished_shards
from pipeline.run.directory import REJECT_SCHEMA, REJECTS, StageResult, run_stage
from pipeline.run.stages import STAGES, fingerprints, require_upstream
from pipeline.semantic.embedding import EmbedConfig
from pipeline.spark.outputs import ddl

EMBED, DOWNLOAD = STAGES["embed"], STAGES["download"]
_COUNTS = pa.schema([("embedded", pa.int64()), ("undecodable", pa.int64()), ("device", pa.string())])
_EMBEDDERS: dict = {}  # one model per Python worker and configuration


EXECUTOR_GPUS = "spark.executor.resource.gpu.amount"


def gpu_task_profile(conf_get):
    """A stage-level resource profile asking one GPU per task, when the executors were given GPUs
    (`EXECUTOR_GPUS` and a discovery script); else None. Only the embed tasks ask, so the other stages of an
    all-in-one job keep every core."""
    from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

    if not float(conf_get(EXECUTOR_GPUS, "0") or 0):
        return None
    return ResourceProfileBuilder().require(TaskResourceRequests().resource("gpu", 1.0)).build


def _assigned_gpu() -> str | None:
    """The CUDA device Spark gave this task (spark.task.resource.gpu.amount with a discovery script), if any."""
    from pyspark import TaskContext

    context = TaskContext.get()
    gpus = context.resources().get("gpu") if context is not None else None
    return f"cuda:{gpus.addresses[0]}" if gpus is not None and gpus.addresses else None


def _embedder(config: EmbedConfig):
    from pipeline.semantic.embedding import load_embedder

    device = _assigned_gpu()
    if (config, device) not in _EMBEDDERS:
        _EMBEDDERS[config, device] = load_embedder(config.model, config.pretrained, config.checkpoint, device)
    return _EMBEDDERS[config, device]


def _vectors(array, dim: int) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1), pa.float16()), dim)


def embed_shard(download_dir: Path, shard: int, out_dir: Path, config: EmbedConfig) -> tuple[int, int, str]:
    """Embed one img2dataset shard into out_dir/part-NNNNN.parquet; returns (embedded, undecodable, device)."""
    from pipeline.semantic.embedding import embed_encoded, embed_texts

    embedder = _embedder(config)
    listed = pq.read_table(download_dir / f"{shard:05d}.parquet", columns=["key", "uid", "caption", "status"])
    wanted = {row["key"]: row for row in listed.to_pylist() if row["status"] == "success"}
    rows, blobs = [], []
    with tarfile.open(download_dir / f"{shard:05d}.tar") as tar:
        for member in tar:
            key, _, extension = member.name.rpartition(".")
            if key in wanted and extension in ("jpg", "png", "webp"):
                rows.append(wanted[key])
                blobs.append(tar.extractfile(member).read())
    image_vectors, embedded, errors = embed_encoded(embedder, blobs, config.batch_size)
    rows_embedded = [rows[position] for position in embedded]
    text_vectors = embed_texts(embedder, [row["caption"] or "" for row in rows_embedded])
    table = pa.table({"uid": pa.array([row["uid"] for row in rows_embedded], pa.string()),
                      "image": _vectors(image_vectors, embedder.dim), "text": _vectors(text_vectors, embedder.dim)})
    pq.write_table(table, out_dir / f"part-{shard:05d}.parquet")
    if errors:
        rejects = [{"uid": rows[position]["uid"], "reason": "undecodable", "detail": error}
                   for position, error in sorted(errors.items())]
        (out_dir / REJECTS).mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rejects, schema=REJECT_SCHEMA),
                       out_dir / REJECTS / f"part-{shard:05d}.parquet")
    return len(rows_embedded), len(errors), embedder.device


def _embed_shards(download_dir: str, out_dir: str, config: EmbedConfig):
    def run(batches):
        for batch in batches:
            for shard in batch.column("shard").to_pylist():
                embedded, undecodable, device = embed_shard(Path(download_dir), shard, Path(out_dir), config)
                yield pa.RecordBatch.from_pylist([{"embedded": embedded, "undecodable": undecodable,
                                                   "device": device}], schema=_COUNTS)
    return run


def run_embed(spark: SparkSession, run_dir: Path, config: EmbedConfig, force: bool = False) -> dict:
    run_dir = Path(run_dir)
    manifests = require_upstream(run_dir, EMBED.name)
    download_dir, upstream = DOWNLOAD.path(run_dir), manifests[DOWNLOAD.folder]

    def body(out_dir: Path) -> StageResult:
        shards = finished_shards(download_dir)
        frame = spark.createDataFrame([(shard,) for shard in shards], "shard int")
        frame = frame.repartition(max(1, min(len(shards), spark.sparkContext.defaultParallelism)))
        counts = frame.mapInArrow(_embed_shards(str(download_dir), str(out_dir), config), ddl(_COUNTS),
                                  profile=gpu_task_profile(spark.conf.get)).collect()
        embedded = sum(row["embedded"] for row in counts)
        undecodable = sum(row["undecodable"] for row in counts)
        dim = pq.read_schema(next(out_dir.glob("part-*.parquet"))).field("image").type.list_size if counts else 0
        return StageResult(rows_in=upstream["rows_out"], rows_out=embedded,
                           rejected={"undecodable": undecodable} if undecodable else {},
                           extra={"model": asdict(config), "dim": dim,
                                  "device": sorted({row["device"] for row in counts})})

    return run_stage(run_dir, EMBED.folder, asdict(config), fingerprints(manifests), body, force=force)
