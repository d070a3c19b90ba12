"""A run directory: one subfolder per stage, written atomically, skipped when already done.

A stage writes into a hidden temporary folder, puts its `_manifest.json` there last, then renames the
folder into place. A stage folder without a manifest is never taken as complete; a stage whose
manifest fingerprint equals the one it would write is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa

MANIFEST = "_manifest.json"
# A failpoint for kill tests (the idea of etcd's gofail): with METACURATE_HOLD_STAGE naming a stage's folder, that
# stage, once its temporary folder exists, waits on the named pipe METACURATE_HOLD_PIPE until the other end closes,
# so a test kills the job at a known point instead of racing it. Unset, it costs one dictionary lookup.
HOLD_STAGE, HOLD_PIPE = "METACURATE_HOLD_STAGE", "METACURATE_HOLD_PIPE"
REJECTS = "_rejects"
# Every stage's rejects share one schema, so a run's rejects can be read together.
REJECT_SCHEMA = pa.schema([
    ("uid", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("source_file", pa.string()),
    ("source_row", pa.int64()),
    ("preview", pa.string()),
])


def fingerprint(stage: str, config: dict, inputs: dict) -> str:
    """Identity of a stage's result: its name, its config and the identity of its inputs."""
    payload = json.dumps({"stage": stage, "config": config, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def file_identity(paths: list[Path]) -> dict[str, list[int]]:
    """Size and modification time of input files: a changed pool invalidates the stages built on it."""
    identity = {}
    for path in paths:
        stat = Path(path).stat()
        identity[str(Path(path).resolve())] = [stat.st_size, stat.st_mtime_ns]
    return identity


def read_manifest(stage_dir: Path) -> dict | None:
    try:
        return json.loads((Path(stage_dir) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_current(stage_dir: Path, stage_fingerprint: str) -> bool:
    manifest = read_manifest(stage_dir)
    return manifest is not None and manifest.get("fingerprint") == stage_fingerprint


def write_json_atomic(path: Path, payload: dict) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(temporary, path)


def replace_dir(source: Path, target: Path) -> None:
    """Put `source` at `target`, removing what was there; the manifest inside moves with it."""
    if target.exists():
        stale = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
        os.rename(target, stale)
        os.rename(source, target)
        shutil.rmtree(stale, ignore_errors=True)
    else:
        os.rename(source, target)


def _clear_leftovers(run_dir: Path, name: str) -> None:
    """Temporary folders of an earlier attempt that crashed: never complete, safe to delete."""
    for leftover in run_dir.glob(f".{name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in run_dir.glob(f".{name}.old-*"):
        shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def staged_dir(run_dir: Path, name: str) -> Iterator[Path]:
    """A temporary folder for a stage's output; on success it replaces `run_dir/name` atomically.

    The caller writes its manifest into the folder before leaving the block.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(run_dir, name)
    temporary = run_dir / f".{name}.tmp-{uuid.uuid4().hex}"
    temporary.mkdir()
    try:
        yield temporary
        if not (temporary / MANIFEST).exists():
            raise RuntimeError(f"stage {name} finished without a manifest")
        replace_dir(temporary, run_dir / name)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


@dataclass
class StageResult:
    """What a stage body reports: rows in and out, rejected rows by reason, anything else worth keeping."""

    rows_in: int
    rows_out: int
    rejected: dict[str, int] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def run_stage(run_dir: Path, name: str, config: dict, inputs: dict,
              body: Callable[[Path], StageResult], force: bool = False) -> dict:
    """Run `body` into a temporary folder and commit it with its manifest, unless already done.

    Returns the manifest; `skipped` is true when an identical earlier result was reused.
    """
    run_dir = Path(run_dir)
    stage_fingerprint = fingerprint(name, config, inputs)
    if not force and is_current(run_dir / name, stage_fingerprint):
        return {**read_manifest(run_dir / name), "skipped": True}
    started = time.time()
    with staged_dir(run_dir, name) as temporary:
        if os.environ.get(HOLD_STAGE) == name:
            with open(os.environ[HOLD_PIPE], "rb") as pipe:
                pipe.read()
        result = body(temporary)
        rejected_total = sum(result.rejected.values())
        if result.rows_in != result.rows_out + rejected_total:
            raise RuntimeError(
                f"stage {name}: {result.rows_in} rows in but {result.rows_out} out + {rejected_total} rejected"
            )
        manifest = {
            "stage": name,
            "fingerprint": stage_fingerprint,
            "config": config,
            "inputs": inputs,
            "rows_in": result.rows_in,
            "rows_out": result.rows_out,
            "rejected": dict(sorted(result.rejected.items())),
            "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
            "wall_seconds": round(time.time() - started, 3),
            **result.extra,
        }
        write_json_atomic(temporary / MANIFEST, manifest)
    return {**manifest, "skipped": False}
