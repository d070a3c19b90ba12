"""The study's arms, composed from one prepared run: which pool rows each trains on, as a uid list and shards.

Every arm starts from the whole downloaded pool (DIR/images) and applies the pipeline's own decisions, read from
its stage outputs: validation (undecodable images, exact and perceptual duplicates), decontamination, SemDeDup
at one eps, and MetaCLIP balancing at one t with the pipeline's seeded draws. Balancing comes last and counts
matches over the rows that are left, as the rebalance stage does (MetaCLIP balances last). The online arm keeps
the rows balanced at a larger t and stores, per row, the chance to draw it that brings it down to t: the
trainer's --online-balance redraws them every epoch (MetaCLIP's online curation).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.errors import UserInputError
from pipeline.image.shards import shard_name, stored_images, write_shard
from pipeline.run.directory import REJECTS, StageResult, read_manifest, run_stage
from pipeline.run.stages import IMAGES_RUN, STAGES, TEXT_RUN
from pipeline.text.balancing import as_list_array, entry_probabilities, keep_mask, keep_probabilities
from pipeline.text.counting import count_entries

POOL, MATCH, DOWNLOAD, VALIDATE, SEMDEDUP, DECONTAMINATE = (
    STAGES[name] for name in ("pool", "match", "download", "validate", "dedup", "decontaminate"))
STUDY_EPS = (0.001, 0.002, 0.005)  # SemDeDup thresholds the study chooses from on validation (untrained embedder)
ONLINE_FACTOR = 4.0  # the online arm's offline t, over the t its draws bring it to
SAMPLES_PER_ARM_SHARD = 500
UIDS = "uids.parquet"
BALANCE_SEED = 0  # the pipeline's default draws (BalanceConfig.seed): arms differ by what they keep, not by luck
RAW, DEDUP, BALANCE, PIPELINE, ONLINE = "raw", "dedup", "balance", "dedup+balance", "online"
ARMS = (RAW, DEDUP, BALANCE, PIPELINE, ONLINE)
REFERENCE = "reference"  # not an arm of the pool: class-balanced photos, the yardstick of difficulty


@dataclass(frozen=True)
class ArmSpec:
    """What an arm applies to the downloaded pool."""

    dedup: bool  # validation and decontamination rejects removed
    eps: float | None = None  # SemDeDup duplicates at this eps removed too (with dedup)
    t: float | None = None  # balanced at this t (None: not balanced)
    online: bool = False  # balanced at ONLINE_FACTOR x t, drawn down to t by the trainer every epoch

    def describe(self) -> str:
        parts = [f"dedup (eps {self.eps:g})" if self.dedup and self.eps is not None else
                 "validation + decontamination" if self.dedup else "no dedup"]
        if self.t is not None:
            parts.append(f"online balance to t = {self.t:g} from {self.t * ONLINE_FACTOR:g}" if self.online
                         else f"balance at t = {self.t:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class PoolFacts:
    """One row per downloaded image of the pool: who it is, what it shows, and what each stage decided."""

    rows: pa.Table  # uid (the pool's), raw_uid, url, caption, label, entry_ids, download_shard, key, facts
    valid: np.ndarray  # validation kept it
    contaminated: np.ndarray  # decontamination removed it
    removed: dict[float, np.ndarray]  # SemDeDup removed it, per eps the dedup stage computed
    fingerprint: str  # the stage outputs it was read from

    @classmethod
    def read(cls, run: Path) -> "PoolFacts":
        run = Path(run)
        images, text = run / IMAGES_RUN, run / TEXT_RUN
        manifests = {folder: read_manifest(folder) for folder in
                     (POOL.path(run), MATCH.path(text), VALIDATE.path(images), SEMDEDUP.path(images))}
        missing = [str(folder) for folder, manifest in manifests.items() if manifest is None]
        if missing:
            raise UserInputError(f"{run}: prepare the study's data first (spark-submit jobs/experiment_data.py "
                                 f"--out {run}); missing: {', '.join(missing)}")
        rows = _with_text_facts(_downloaded_rows(run), text)
        raw_uids = rows.column("raw_uid")
        decontaminated = read_manifest(DECONTAMINATE.path(images))
        fingerprint = "-".join(manifest["fingerprint"][:8] for manifest in
                               [*manifests.values(), *([decontaminated] if decontaminated else [])])
        return cls(rows, pc.equal(rows.column("status"), "kept").to_numpy(zero_copy_only=False),
                   _contaminated(images, raw_uids, decontaminated is not None),
                   _semdedup_removed(images, raw_uids, manifests[SEMDEDUP.path(images)]["eps"]), fingerprint)

    def selection(self, spec: ArmSpec) -> tuple[np.ndarray, np.ndarray]:
        """The rows the arm trains on and each row's keep probability (its chance to be drawn per epoch online)."""
        base = np.ones(self.rows.num_rows, dtype=bool)
        if spec.dedup:
            base &= self.valid & ~self.contaminated
            if spec.eps is not None:
                if spec.eps not in self.removed:
                    raise UserInputError(f"SemDeDup computed eps {sorted(self.removed)}, not {spec.eps:g}: "
                                         f"prepare the data with that eps in --eps")
                base &= ~self.removed[spec.eps]
        keep_prob = np.ones(self.rows.num_rows)
        if spec.t is None:
            return base, keep_prob
        entry_ids = as_list_array(self.rows.column("entry_ids"))
        survivors = np.flatnonzero(base)
        counted = as_list_array(entry_ids.take(pa.array(survivors)))
        counts = count_entries(counted, vocabulary_size=int(pc.max(entry_ids.flatten()).as_py() or 0) + 1)
        offline_t = spec.t * ONLINE_FACTOR if spec.online else spec.t
        offline = entry_probabilities(counts, offline_t)
        kept = keep_mask(self.rows.column("uid").take(pa.array(survivors)).to_pylist(), counted, offline,
                         BALANCE_SEED)
        chosen = np.zeros(self.rows.num_rows, dtype=bool)
        chosen[survivors[kept]] = True
        keep_prob = keep_probabilities(entry_ids, entry_probabilities(counts, spec.t))
        if spec.online:
            keep_prob = np.divide(keep_prob, keep_probabilities(entry_ids, offline),
                                  out=np.zeros_like(keep_prob), where=chosen)
        return chosen, np.where(chosen, np.minimum(keep_prob, 1.0), 0.0)


def _downloaded_rows(run: Path) -> pa.Table:
    """Every downloaded image with its validation verdict, download shard, caption and CIFAR-10 label."""
    images = run / IMAGES_RUN
    labels = pq.read_table(POOL.file(run, "labels"), columns=["url", "label", "source"])
    validated = ds.dataset(VALIDATE.path(images), format="parquet").to_table(
        columns=["uid", "key", "width", "height", "sha256", "phash", "status"])
    status = pq.read_table(DOWNLOAD.file(images, "status") / "status.parquet", columns=["uid", "url", "shard"])
    selection = ds.dataset(STAGES["balance"].path(images), format="parquet").to_table(columns=["uid", "caption"])
    return (validated.rename_columns(["raw_uid", *validated.column_names[1:]])
            .join(status.rename_columns(["raw_uid", "url", "download_shard"]), "raw_uid")
            .join(selection.rename_columns(["raw_uid", "caption"]), "raw_uid")
            .join(labels, "url")
            .sort_by("raw_uid"))


def _with_text_facts(rows: pa.Table, text: Path) -> pa.Table:
    """Adds the pool's own uid (the text run's) and the caption's matched entries (none for an unmatched one)."""
    ingested = ds.dataset(STAGES["ingest"].path(text), format="parquet").to_table(columns=["uid", "url"])
    matched = ds.dataset(MATCH.path(text), format="parquet").to_table(columns=["url", "entry_ids"])
    urls = rows.column("url")
    uids = ingested.column("uid").take(pc.index_in(urls, ingested.column("url")))
    found = pc.index_in(urls, matched.column("url"))
    empty = pa.array([[]] * rows.num_rows, pa.list_(pa.int32()))
    entry_ids = pc.if_else(pc.is_null(found), empty, matched.column("entry_ids").take(found))
    return rows.append_column("uid", uids).append_column("entry_ids", entry_ids)


def _semdedup_removed(images: Path, raw_uids: pa.ChunkedArray, eps_values) -> dict[float, np.ndarray]:
    """Per eps the dedup stage computed: which rows SemDeDup removed."""
    decisions = ds.dataset(SEMDEDUP.path(images), format="parquet").to_table(columns=["uid", "eps", "status"])
    removed = {}
    for eps in eps_values:
        gone = decisions.filter(pc.and_(pc.equal(decisions.column("eps"), eps),
                                        pc.equal(decisions.column("status"), "removed"))).column("uid")
        removed[float(eps)] = pc.is_in(raw_uids, gone).to_numpy(zero_copy_only=False)
    return removed


def _contaminated(images: Path, raw_uids: pa.ChunkedArray, decontaminated: bool) -> np.ndarray:
    """Which rows decontamination removed (none when the stage did not run)."""
    if not decontaminated:
        return np.zeros(len(raw_uids), dtype=bool)
    rejects = pq.read_table(DECONTAMINATE.path(images) / REJECTS, columns=["uid"]).column("uid")
    return pc.is_in(raw_uids, rejects).to_numpy(zero_copy_only=False)


def arm_spec(arm: str, t: float, eps: float | None) -> ArmSpec:
    """What each arm applies, at the study's chosen t and eps."""
    return {RAW: ArmSpec(dedup=False), DEDUP: ArmSpec(dedup=True, eps=eps), BALANCE: ArmSpec(dedup=False, t=t),
            PIPELINE: ArmSpec(dedup=True, eps=eps, t=t), ONLINE: ArmSpec(dedup=True, eps=eps, t=t, online=True)}[arm]


def write_arm(run: Path, name: str, facts: PoolFacts, spec: ArmSpec) -> dict:
    """RUN/<name>: uids.parquet (uid, url, caption, label, keep_prob) and shards/ of the arm's rows, in uid order.
    Reused while the spec and the stage outputs are the same."""
    run = Path(run)

    def body(out_dir: Path) -> StageResult:
        chosen, keep_prob = facts.selection(spec)
        rows = facts.rows.filter(pa.array(chosen)).append_column("keep_prob", pa.array(keep_prob[chosen]))
        rows = rows.sort_by("uid")
        pq.write_table(rows.select(["uid", "url", "caption", "label", "keep_prob"]), out_dir / UIDS)
        shards = out_dir / "shards"
        shards.mkdir()
        count = max(4, math.ceil(rows.num_rows / SAMPLES_PER_ARM_SHARD))  # enough for 2 loader workers
        listed = rows.to_pylist()
        images = stored_images(listed, DOWNLOAD.path(run / IMAGES_RUN))
        for index in range(count):
            write_shard(shards / shard_name(index), listed[index::count], images)
        labels = rows.column("label").to_pylist()
        extra = {"describe": spec.describe(), "sources": len(set(rows.column("source").to_pylist())),
                 "class_samples": {label: labels.count(label) for label in sorted(set(labels))}}
        return StageResult(facts.rows.num_rows, rows.num_rows,
                           rejected={"not_in_arm": facts.rows.num_rows - rows.num_rows}, extra=extra)

    return run_stage(run, name, asdict(spec), {"facts": facts.fingerprint}, body)


def arm_shards(run: Path, name: str) -> Path:
    return Path(run) / name / "shards"
