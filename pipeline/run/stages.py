"""The stage registry: every stage's name, its folder in a run directory, its named files and its upstream
stages, declared once. Bindings, the report, the run reader and the experiment take names from here.

The folders keep the names users' run directories already have (`matches`, `entry_counts`, `selection`, ...),
and a stage's manifest fingerprint is computed over its folder name, so runs made before stay current.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.run.directory import read_manifest


@dataclass(frozen=True)
class Stage:
    name: str  # what users call the stage: jobs/<name>.py and the funnel's order
    folder: str  # its folder in a run directory
    upstream: tuple[str, ...] = ()  # stages whose output it reads, by name
    job: str | None = None  # the command that makes it, named when it is missing
    optional: tuple[str, ...] = ()  # stages whose output it uses when they have run
    files: dict[str, str] = field(default_factory=dict)  # its named files and subfolders

    def path(self, run_dir: Path | str) -> Path:
        return Path(run_dir) / self.folder

    def file(self, run_dir: Path | str, key: str) -> Path:
        return self.path(run_dir) / self.files[key]


_DECLARED = (  # pipeline order
    Stage("pool", "pool", job="jobs/experiment_data.py",
          files={"pool": "pool.jsonl", "labels": "labels.parquet", "images": "images",
                 "validation": "validation.tar", "reference": "reference"}),
    Stage("ingest", "ingest", job="jobs/ingest.py"),
    Stage("match", "matches", ("ingest",), "jobs/match.py", files={"partial_counts": "_counts"}),
    Stage("count", "entry_counts", ("match",), "jobs/count.py", files={"counts": "counts.parquet"}),
    Stage("balance", "selection", ("match", "count"), "jobs/balance.py"),
    Stage("download", "download", ("balance",), "jobs/download.py", files={"input": "_input", "status": "_status"}),
    Stage("validate", "validate", ("download",), "jobs/validate.py"),
    Stage("embed", "embed", ("download",), "jobs/embed.py"),
    Stage("dedup", "dedup", ("embed", "validate"), "jobs/dedup.py", files={"centroids": "_centroids.npy"}),
    Stage("decontaminate", "decontaminate", ("validate",), "jobs/decontaminate.py", ("embed",)),
    Stage("safety", "safety", ("download", "validate"), "jobs/safety.py"),
    Stage("score_filter", "score_filter", ("embed", "validate"), "jobs/score_filter.py", ("dedup",),
          files={"clusters": "_density_clusters.parquet"}),
    Stage("rebalance", "rebalance", ("balance", "validate", "count"), "jobs/rebalance.py",
          ("dedup", "decontaminate", "safety", "score_filter"),
          files={"entry_counts": "_entry_counts.parquet"}),
    Stage("shards", "shards", ("rebalance", "validate", "download"), "jobs/write_shards.py",
          files={"index": "index.parquet", "stats": "stats.json"}),
    Stage("train", "train", ("shards",), "python -m pipeline.train",
          files={"log": "log.jsonl", "zero_shot_log": "zero_shot.jsonl", "summary": "summary.json",
                 "checkpoints": "checkpoints"}),
    Stage("bigrams", "bigrams", job="jobs/mine_bigrams.py", files={"bigrams": "bigrams.parquet"}),
)
STAGES: dict[str, Stage] = {stage.name: stage for stage in _DECLARED}
TEXT_STAGES = tuple(STAGES[name] for name in ("ingest", "match", "count", "balance"))
IMAGE_STAGES = tuple(STAGES[name] for name in ("download", "validate", "embed", "dedup", "rebalance", "shards"))
# The study's runs: the whole pool downloaded and through the image stages; its captions through the text stages.
IMAGES_RUN, TEXT_RUN = "images", "text"


def folder_order() -> tuple[str, ...]:
    """Stage folders in pipeline order (how the report and the funnel list a run's stages)."""
    return tuple(stage.folder for stage in _DECLARED)


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def require_upstream(run_dir: Path | str, name: str) -> dict[str, dict]:
    """The manifests of a stage's upstream stages, keyed by folder; a missing one is a FileNotFoundError that
    names what to run first."""
    wanted = [STAGES[upstream] for upstream in STAGES[name].upstream]
    manifests = {stage.folder: read_manifest(stage.path(run_dir)) for stage in wanted}
    missing = sorted((stage for stage in wanted if manifests[stage.folder] is None), key=_DECLARED.index)
    if missing:
        what = f"the {missing[0].name} stage" if len(missing) == 1 else _listed([stage.name for stage in missing])
        raise FileNotFoundError(f"{Path(run_dir)}: run {what} first ({', '.join(stage.job for stage in missing)})")
    return manifests


def present_upstream(run_dir: Path | str, name: str) -> dict[str, dict]:
    """The manifests of a stage's optional upstream stages that have run, keyed by folder."""
    found = {STAGES[other].folder: read_manifest(STAGES[other].path(run_dir)) for other in STAGES[name].optional}
    return {folder: manifest for folder, manifest in found.items() if manifest is not None}


def stale_inputs(run_dir: Path | str, name: str) -> list[str]:
    """Upstream folders the stage's output no longer reflects: changed since it ran, or an optional stage that
    ran after it. What a downstream stage must not build on."""
    stage = STAGES[name]
    seen = read_manifest(stage.path(run_dir))["inputs"]
    required = {STAGES[other].folder: read_manifest(STAGES[other].path(run_dir)) for other in stage.upstream}
    current = {folder: manifest["fingerprint"] for folder, manifest in required.items()
               if manifest is not None and folder in seen}
    current.update(fingerprints(present_upstream(run_dir, name)))
    return sorted(folder for folder, fingerprint in current.items() if seen.get(folder) != fingerprint)


def fingerprints(manifests: dict[str, dict]) -> dict[str, str]:
    """The inputs part of a stage's identity: each upstream folder with its manifest's fingerprint."""
    return {folder: manifest["fingerprint"] for folder, manifest in manifests.items()}
