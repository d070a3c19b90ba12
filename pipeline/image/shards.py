"""Write final samples as webdataset shards: `<uid>.jpg`, `<uid>.txt` (caption), `<uid>.json` (metadata).

Samples are ordered by uid and cut into shards of a fixed size, so the same selection always gives the
same shards. The image bytes are copied from img2dataset's tars as they are (no re-encoding).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Iterable

import pyarrow as pa

SAMPLES_PER_SHARD = 10_000  # webdataset's usual shard size: a few hundred MB of 256 px JPEGs
INDEX_SCHEMA = pa.schema([("uid", pa.string()), ("shard", pa.string()), ("bytes", pa.int64())])


def shard_name(index: int) -> str:
    """`00000.tar`, ...: open_clip's brace patterns (`{00000..00041}.tar`) address them directly."""
    return f"{index:05d}.tar"


def _source_members(download_dir: Path, shard: int, keys: set[str]) -> dict[str, tuple[str, bytes]]:
    """key -> (image extension, bytes) of the wanted keys of one img2dataset shard."""
    found = {}
    with tarfile.open(download_dir / f"{shard:05d}.tar") as tar:
        for member in tar:
            key, _, extension = member.name.rpartition(".")
            if key in keys and extension in ("jpg", "png", "webp"):
                found[key] = (extension, tar.extractfile(member).read())
    return found


def add_member(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mode = 0o644
    info.mtime = 0  # identical input gives identical bytes
    tar.addfile(info, io.BytesIO(payload))


def sample_metadata(row: dict) -> dict:
    """What the .json of a sample holds: identity, provenance, balancing and image facts."""
    return {"uid": row["uid"], "url": row["url"], "entry_ids": list(row["entry_ids"]),
            "keep_prob": row["keep_prob"], "width": row["width"], "height": row["height"],
            "sha256": row["sha256"], "phash": row["phash"]}


def stored_images(rows: Iterable[dict], download_dir: Path) -> dict[tuple[int, str], tuple[str, bytes]]:
    """(download shard, key) -> (image extension, bytes) of the rows, each img2dataset shard read once."""
    wanted: dict[int, set[str]] = {}
    for row in rows:
        wanted.setdefault(row["download_shard"], set()).add(row["key"])
    images = {}
    for shard, keys in sorted(wanted.items()):
        images.update({(shard, key): image for key, image in _source_members(download_dir, shard, keys).items()})
    return images


def write_shard(path: Path, rows: Iterable[dict], images: dict[tuple[int, str], tuple[str, bytes]]) -> list[dict]:
    """Write one shard from rows (selection + validation columns + download shard and key), in uid order, with
    their images from `stored_images`.

    Returns one index row per sample written.
    """
    index = []
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for row in sorted(rows, key=lambda row: row["uid"]):
            extension, image = images[(row["download_shard"], row["key"])]
            add_member(tar, f"{row['uid']}.{extension}", image)
            add_member(tar, f"{row['uid']}.txt", row["caption"].encode("utf-8"))
            add_member(tar, f"{row['uid']}.json", json.dumps(sample_metadata(row), sort_keys=True).encode("utf-8"))
            index.append({"uid": row["uid"], "shard": path.name, "bytes": len(image)})
    return index
