"""A run directory read back as tables, for the report and the notebooks (polars and pyarrow, no Spark).

Every reader works from what is on disk: a stage that has not run is simply absent, so a text-only run
and a finished image run are read the same way.
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline import REPO
from pipeline.errors import UserInputError
from pipeline.run.directory import MANIFEST, REJECTS, read_manifest
from pipeline.run.stages import STAGES, folder_order
from pipeline.semantic.vectors import read_embedding_columns

INGEST, MATCH, COUNT, BALANCE = (STAGES[name] for name in ("ingest", "match", "count", "balance"))
DOWNLOAD, VALIDATE, REBALANCE, EMBED, DEDUP, TRAIN = (STAGES[name] for name in
                                                      ("download", "validate", "rebalance", "embed", "dedup", "train"))


def default_run() -> Path:
    """The run the notebooks open unless METACURATE_RUN names another: the image demo (make demo-images)
    when it exists, else the text demo (make demo)."""
    if "METACURATE_RUN" in os.environ:
        return Path(os.environ["METACURATE_RUN"])
    images = REPO / "runs" / "demo-images"
    return images if images.is_dir() else REPO / "runs" / "demo"


def _read_jsonl(path: Path) -> list[dict]:
    """The records of a training log, one per step: a run resumed after a crash logs some steps twice."""
    if not path.is_file():
        return []
    by_step = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            by_step[record["step"]] = record
    return [by_step[step] for step in sorted(by_step)]


@dataclass(frozen=True)
class TrainingRun:
    """A training folder (python -m pipeline.train): its logged loss and, when it evaluated while training,
    zero-shot."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def loss(self) -> pl.DataFrame:
        rows = _read_jsonl(self.path / TRAIN.files["log"])
        return pl.DataFrame([{key: row[key] for key in ("step", "samples_seen", "loss", "lr")} for row in rows],
                            schema={"step": pl.Int64, "samples_seen": pl.Int64, "loss": pl.Float64,
                                    "lr": pl.Float64})

    def zero_shot(self) -> pl.DataFrame:
        rows = _read_jsonl(self.path / TRAIN.files["zero_shot_log"])
        return pl.DataFrame([{key: row[key] for key in ("step", "samples_seen", "top1", "top5", "mean_per_class")}
                             for row in rows],
                            schema={"step": pl.Int64, "samples_seen": pl.Int64, "top1": pl.Float64,
                                    "top5": pl.Float64, "mean_per_class": pl.Float64})


class Run:
    """The stages present in a run directory, in pipeline order, and readers for their outputs."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.is_dir():
            raise UserInputError(f"{self.path}: no such run directory")
        found = {child.name: manifest for child in sorted(self.path.iterdir())
                 if child.is_dir() and not child.name.startswith(".")
                 and (manifest := read_manifest(child)) is not None}
        if not found:
            raise UserInputError(f"{self.path}: no finished stage here (no */{MANIFEST}); run a job into it first")
        # Pipeline order; any other folder with a manifest follows, in the order it ran.
        known = [name for name in folder_order() if name in found]
        others = sorted((name for name in found if name not in known), key=lambda name: found[name]["started_at"])
        self.manifests: dict[str, dict] = {name: found[name] for name in known + others}

    def has(self, *stages: str) -> bool:
        return all(stage in self.manifests for stage in stages)

    def table(self, stage: str, columns: list[str] | None = None) -> pl.DataFrame:
        """A stage's rows (its Parquet files; _rejects and other _ files left out)."""
        return pl.from_arrow(pq.read_table(self.path / stage, columns=columns))

    def rejects(self, stage: str) -> pl.DataFrame | None:
        folder = self.path / stage / REJECTS
        return pl.from_arrow(pq.read_table(folder)) if folder.is_dir() else None

    @property
    def t(self) -> float | None:
        selection = self.manifests.get(BALANCE.folder)
        return selection["t"] if selection else None

    def funnel(self) -> pl.DataFrame:
        """One row per stage: rows in, rows out, rejected rows by reason, wall time (from the manifests)."""
        rows = []
        for stage, manifest in self.manifests.items():
            rejected = manifest.get("rejected") or {}
            rows.append({"stage": stage, "rows_in": manifest.get("rows_in"), "rows_out": manifest.get("rows_out"),
                         "rejected": sum(rejected.values()),
                         "reasons": [{"reason": reason, "rows": rows} for reason, rows in sorted(rejected.items())],
                         "wall_seconds": manifest.get("wall_seconds")})
        return pl.DataFrame(rows, schema={"stage": pl.String, "rows_in": pl.Int64, "rows_out": pl.Int64,
                                          "rejected": pl.Int64,
                                          "reasons": pl.List(pl.Struct({"reason": pl.String, "rows": pl.Int64})),
                                          "wall_seconds": pl.Float64})

    @property
    def language_thresholds(self) -> dict[str, dict]:
        """Worldwide runs: per language its t, how it was set and its tail share (the balance manifest's)."""
        selection = self.manifests.get(BALANCE.folder)
        return (selection or {}).get("languages") or {}

    def entry_counts(self) -> pl.DataFrame:
        """Entries matched at least once: `count` (matches in the pool), `p`, `selected` (after text
        balancing) and, once images are deduplicated and rebalanced, `count_final` and `selected_final`.
        Worldwide runs add each entry's `language` and its language's `t`."""
        columns = ["entry_id", "entry", "count", "p", "selected"]
        worldwide = "language" in pq.read_schema(COUNT.file(self.path, "counts")).names
        counts = self.table(COUNT.folder, columns + (["language"] if worldwide else [])).filter(pl.col("count") > 0)
        if worldwide and self.language_thresholds:
            thresholds = pl.DataFrame({"language": list(self.language_thresholds),
                                       "t": [figures["t"] for figures in self.language_thresholds.values()]})
            counts = counts.join(thresholds, on="language", how="left")
        final = REBALANCE.file(self.path, "entry_counts")
        if final.is_file():
            after = pl.read_parquet(final, columns=["entry_id", "count", "selected"])
            counts = counts.join(after.rename({"count": "count_final", "selected": "selected_final"}), on="entry_id",
                                 how="left")
        return counts.sort(["count", "entry_id"], descending=[True, False])

    def language_mix(self) -> pl.DataFrame:
        """Rows per caption language in the pool (ingested) and in the selection, most frequent first; empty for
        a run whose captions have no language."""
        if "language" not in ds.dataset(self.path / INGEST.folder, format="parquet").schema.names:
            return pl.DataFrame(schema={"language": pl.String, "pool": pl.UInt32, "selected": pl.UInt32})
        pool = self.table(INGEST.folder, ["language"]).group_by("language").len("pool")
        mix = pool
        if self.has(BALANCE.folder):
            selected = self.table(BALANCE.folder, ["language"]).group_by("language").len("selected")
            mix = pool.join(selected, on="language", how="left").with_columns(pl.col("selected").fill_null(0))
        return mix.sort(["pool", "language"], descending=[True, False])

    def tail_share(self) -> float | None:
        """Share of matched entries at or below t, whose samples balancing keeps whole (MetaCLIP's tail)."""
        if self.t is None:
            return None
        counts = self.entry_counts()
        return float((counts["count"] <= self.t).mean()) if len(counts) else 0.0

    def _unmatched_uids(self) -> pl.DataFrame:
        """Captions that matched nothing: rejected by the match stage as no_match (and any empty match list)."""
        empty = self.table(MATCH.folder, ["uid", "entry_ids"]).filter(pl.col("entry_ids").list.len() == 0).select("uid")
        rejects = self.rejects(MATCH.folder)
        if rejects is not None:
            empty = pl.concat([empty, rejects.filter(pl.col("reason") == "no_match").select("uid")])
        return empty

    def matches_per_caption(self) -> pl.DataFrame:
        """How many captions matched 0, 1, 2, ... entries (0 counts the no_match rejects too)."""
        lengths = self.table(MATCH.folder, ["entry_ids"]).select(pl.col("entry_ids").list.len().alias("matches"))
        unmatched = pl.DataFrame({"matches": [0] * len(self._unmatched_uids())}, schema={"matches": pl.UInt32})
        return (pl.concat([lengths.filter(pl.col("matches") > 0), unmatched])
                .group_by("matches").len("captions").sort("matches"))

    def captions(self, uids: list[str] | None = None) -> pl.DataFrame:
        """uid, url, caption of ingested samples (all, or those named)."""
        frame = self.table(INGEST.folder, ["uid", "url", "caption"])
        return frame if uids is None else frame.filter(pl.col("uid").is_in(uids))

    def unmatched_captions(self, limit: int = 10) -> pl.DataFrame:
        """Captions that matched no entry (first by uid, so the sample is stable)."""
        return (self.captions().join(self._unmatched_uids(), on="uid").sort("uid").head(limit)
                .select("uid", "caption"))

    def entry_examples(self, entry_ids: list[int], per_entry: int = 3) -> dict[int, list[str]]:
        """Up to `per_entry` captions that matched each entry (smallest uids first)."""
        matched = (self.table(MATCH.folder, ["uid", "entry_ids"]).explode("entry_ids")
                   .filter(pl.col("entry_ids").is_in(entry_ids)))
        examples = (matched.join(self.captions().select("uid", "caption"), on="uid").sort("uid")
                    .group_by("entry_ids").agg(pl.col("caption").head(per_entry)))
        found = dict(zip(examples["entry_ids"].to_list(), examples["caption"].to_list()))
        return {entry_id: found.get(entry_id, []) for entry_id in entry_ids}

    def duplicate_groups(self) -> pl.DataFrame:
        """Each duplicate removed by image dedup with the sample it duplicates: `kind` is exact/near (validate,
        sha256 and perceptual hash) or semantic (dedup, at its smallest eps); `group_size` counts the kept
        sample and all of its removed duplicates."""
        frames = []
        if self.has(VALIDATE.folder):
            validate = self.table(VALIDATE.folder, ["uid", "reason", "detail", "duplicate_of"])
            frames.append(validate.filter(pl.col("duplicate_of").is_not_null()).select(
                "uid", "duplicate_of", pl.when(pl.col("detail") == "same sha256").then(pl.lit("exact"))
                .otherwise(pl.lit("near")).alias("kind"), pl.col("detail")))
        if self.has(DEDUP.folder):
            dedup = self.table(DEDUP.folder, ["uid", "status", "duplicate_of", "similarity", "eps"])
            dedup = dedup.filter((pl.col("eps") == pl.col("eps").min()) & pl.col("duplicate_of").is_not_null())
            frames.append(dedup.select("uid", "duplicate_of", pl.lit("semantic").alias("kind"),
                                       pl.format("cosine similarity {}", pl.col("similarity").round(4))
                                       .alias("detail")))
        schema = {"uid": pl.String, "duplicate_of": pl.String, "kind": pl.String, "detail": pl.String}
        pairs = pl.concat([frame.cast(schema) for frame in frames]) if frames else pl.DataFrame(schema=schema)
        sizes = pairs.group_by("kind", "duplicate_of").len("removed")
        return (pairs.join(sizes, on=["kind", "duplicate_of"])
                .with_columns((pl.col("removed") + 1).cast(pl.Int64).alias("group_size")).drop("removed")
                .sort(["kind", "group_size", "duplicate_of", "uid"], descending=[False, True, False, False]))

    def image_bytes(self, uids: list[str]) -> dict[str, bytes]:
        """The downloaded image of each named uid that has one (read from img2dataset's tar shards)."""
        if not self.has(DOWNLOAD.folder):
            return {}
        status = (self.table(f"{DOWNLOAD.folder}/{DOWNLOAD.files['status']}", ["uid", "key", "shard", "status"])
                  .filter((pl.col("status") == "success") & pl.col("uid").is_in(uids)))
        found: dict[str, bytes] = {}
        for (shard,), rows in status.group_by(["shard"]):
            wanted = dict(zip(rows["key"].to_list(), rows["uid"].to_list()))
            with tarfile.open(DOWNLOAD.path(self.path) / f"{shard:05d}.tar") as archive:
                for member in archive:
                    key, _, extension = member.name.rpartition(".")
                    if key in wanted and extension in ("jpg", "jpeg", "png", "webp"):
                        found[wanted[key]] = archive.extractfile(member).read()
        return found

    def _vectors(self, columns: tuple[str, ...], limit: int | None) -> tuple[list[str], list[np.ndarray]]:
        """uids and the named vector columns (float32) of the embed stage: the first `limit` files' rows."""
        uids, parts = [], []
        for path in sorted(EMBED.path(self.path).glob("part-*.parquet")):
            found, matrices = read_embedding_columns(path, columns)
            uids.extend(found)
            parts.append(matrices)
            if limit is not None and len(uids) >= limit:
                break
        if not parts:
            return [], [np.zeros((0, 0), np.float32) for _ in columns]
        return uids[:limit], [np.concatenate(column)[:limit] for column in zip(*parts)]

    def embeddings(self, limit: int | None = None) -> tuple[list[str], np.ndarray]:
        """uids and unit image embeddings of the embed stage (the first `limit` files' rows, when given)."""
        uids, (image,) = self._vectors(("image",), limit)
        return uids, image

    def pair_embeddings(self, limit: int | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """uids with their image and caption embeddings from the embed stage (the first `limit`)."""
        uids, (image, text) = self._vectors(("image", "text"), limit)
        return uids, image, text

    def training_runs(self, extra: list[Path] = ()) -> list[TrainingRun]:
        """Training folders attached to the run (DIR/train, DIR/train/*) and any given."""
        candidates = [TRAIN.path(self.path), *sorted(TRAIN.path(self.path).glob("*")), *map(Path, extra)]
        return [TrainingRun(path) for path in candidates if (path / TRAIN.files["log"]).is_file()]
