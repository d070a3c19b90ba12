"""The closed loop: the same tiny CLIP, trained for the same samples on the raw pool and on the curated shards,
evaluated zero-shot on held-out labelled images (CIFAR-10's test set).

    spark-submit jobs/experiment_data.py --out RUN           (the pool, curated and raw: see that job)
    python -m pipeline.experiment --run RUN --name NAME --seeds 0 1 2

Writes experiments/NAME/results.json (per arm and seed: top1, mean_per_class, head, tail, samples_seen,
train_seconds, seed, ...), table.md and per_class.png. Head classes are those the balance capped (more pool
rows than t), tail classes the rest. Training runs go to RUN/train/ARM-seedS-KEY (KEY names the training
settings); a finished one is reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline import REPO
from pipeline.errors import UserInputError
from pipeline.experiments.longtail import CIFAR10_TEST
from pipeline.run.directory import read_manifest, write_json_atomic
from pipeline.run.stages import CURATED_ARM, RAW_ARM, STAGES

ARMS = (RAW_ARM, CURATED_ARM)
POOL, REBALANCE, SHARDS, DOWNLOAD, TRAIN = (STAGES[name] for name in
                                            ("pool", "rebalance", "shards", "download", "train"))
METRICS = ("top1", "mean_per_class", "head", "tail")


def arm_shards(run: Path) -> dict[str, Path]:
    """Where each arm's training shards are in a prepared run."""
    return {RAW_ARM: DOWNLOAD.path(Path(run) / RAW_ARM), CURATED_ARM: SHARDS.path(Path(run) / CURATED_ARM)}


@dataclass(frozen=True)
class Training:
    """What both arms share: the model and how long and how it is trained."""

    model: str = "metacurate-tiny"
    samples: int = 48_000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 50
    workers: int = 2

    def key(self) -> str:
        """Names the training folders: other settings train anew instead of meeting a finished run."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class PreparedRun:
    """What jobs/experiment_data.py left in RUN, read back: each arm's shards and urls, and the pool's facts."""

    run: Path
    t: float
    class_rows: dict[str, int]  # pool rows per class, most frequent first
    labels: dict[str, tuple[str, str]]  # url -> (class, source photo)

    @classmethod
    def read(cls, run: Path) -> "PreparedRun":
        run = Path(run)
        folders = (POOL.path(run), REBALANCE.path(run / CURATED_ARM), *arm_shards(run).values())
        manifests = [read_manifest(folder) for folder in folders]
        if None in manifests:
            raise UserInputError(f"{run}: prepare the arms first (spark-submit jobs/experiment_data.py --out {run})")
        pool, rebalance = manifests[:2]
        labels = pq.read_table(POOL.file(run, "labels"), columns=["url", "label", "source"]).to_pydict()
        by_frequency = dict(sorted(pool["class_rows"].items(), key=lambda item: (-item[1], item[0])))
        return cls(run, float(rebalance["t"]), by_frequency,
                   {url: (label, source) for url, label, source in
                    zip(labels["url"], labels["label"], labels["source"])})

    def urls(self, arm: str) -> list[str]:
        """The urls of the arm's training samples."""
        if arm == RAW_ARM:
            status = pq.read_table(DOWNLOAD.file(self.run / RAW_ARM, "status") / "status.parquet",
                                   columns=["url", "status"])
            return status.filter(pc.equal(status.column("status"), "success")).column("url").to_pylist()
        return ds.dataset(REBALANCE.path(self.run / CURATED_ARM), format="parquet").to_table(
            columns=["url"]).column("url").to_pylist()

    def head_and_tail(self) -> tuple[list[str], list[str]]:
        head = [label for label, rows in self.class_rows.items() if rows > self.t]
        return head, [label for label in self.class_rows if label not in head]

    def composition(self, arm: str) -> dict:
        """What the arm trains on: samples per class, and copies (samples beyond one per source photo)."""
        urls = self.urls(arm)
        classes = [self.labels[url][0] for url in urls]
        sources = {self.labels[url][1] for url in urls}
        return {"samples": len(urls), "copies": len(urls) - len(sources),
                "class_samples": {label: classes.count(label) for label in self.class_rows}}


def losses(train_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (Path(train_dir) / TRAIN.files["log"]).read_text().splitlines()]


def run_arm(prepared: PreparedRun, arm: str, seed: int, training: Training, classes: Path, images: Path) -> dict:
    """Train one arm with one seed (or reuse its finished run) and evaluate it zero-shot."""
    from pipeline.clip.evaluate import evaluate
    from pipeline.clip.training.loop import train
    from pipeline.clip.training.options import TrainConfig

    out = TRAIN.path(prepared.run) / f"{arm}-seed{seed}-{training.key()}"
    config = TrainConfig(shards=(str(arm_shards(prepared.run)[arm]),), model=training.model, samples=training.samples,
                         batch_size=training.batch_size, lr=training.lr, warmup=training.warmup,
                         workers=training.workers, log_every=25, checkpoint_every=10_000, seed=seed)
    summary = train(config, out, resume="latest" if (out / TRAIN.files["checkpoints"]).exists() else None)
    zero_shot = evaluate(summary["checkpoint"], classes=classes, images=images)["zero_shot"]
    head, tail = prepared.head_and_tail()
    per_class = zero_shot["per_class"]
    logged = losses(out)
    return {"arm": arm, "seed": seed, "top1": zero_shot["top1"], "mean_per_class": zero_shot["mean_per_class"],
            "head": float(np.mean([per_class[label] for label in head])),
            "tail": float(np.mean([per_class[label] for label in tail])),
            "per_class": per_class, "samples_seen": summary["samples_seen"],
            "train_seconds": summary["train_seconds"], "first_loss": logged[0], "final_loss": logged[-1],
            "test_images": zero_shot["images"]}


def spread(runs: list[dict], metric: str) -> tuple[float, float]:
    """Mean and standard deviation over seeds (0 for one seed)."""
    values = [run[metric] for run in runs]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def format_table(results: dict) -> str:
    """Markdown: one row per arm, mean ± std over the seeds."""
    head, tail = results["head_classes"], results["tail_classes"]
    lines = [f"| arm | training set (copies) | top-1 | mean per-class | head ({len(head)} classes) | "
             f"tail ({len(tail)} classes) | samples seen | train s |", "|" + " --- |" * 8]
    for arm in ARMS:
        runs = results["arms"][arm]
        cells = [f"{mean:.3f} ± {std:.3f}" for mean, std in (spread(runs, metric) for metric in METRICS)]
        composition = results["composition"][arm]
        lines.append(f"| {arm} | {composition['samples']:,} ({composition['copies']:,}) | {' | '.join(cells)} | "
                     f"{runs[0]['samples_seen']:,} | {spread(runs, 'train_seconds')[0]:.0f} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Per-class zero-shot top-1 of both arms (mean over seeds, bars at min and max), classes from the most to
    the least frequent in the pool, with each arm's training samples per class on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = sorted(results["class_rows"], key=lambda label: -results["class_rows"][label])
    positions = np.arange(len(classes))
    figure, accuracy = plt.subplots(figsize=(10, 4.8))
    samples = accuracy.twinx()
    for offset, arm, color in ((-0.2, RAW_ARM, "tab:gray"), (0.2, CURATED_ARM, "tab:blue")):
        values = np.array([[run["per_class"][label] for label in classes] for run in results["arms"][arm]])
        mean = values.mean(axis=0)
        accuracy.bar(positions + offset, mean, width=0.4, color=color, label=f"{arm}: zero-shot top-1",
                     yerr=[mean - values.min(axis=0), values.max(axis=0) - mean], capsize=2)
        counts = [results["composition"][arm]["class_samples"][label] for label in classes]
        samples.plot(positions, counts, marker="o", color=color, linestyle="--", label=f"{arm}: training samples")
    samples.set_yscale("log")
    samples.set_ylabel("training samples of the class")
    accuracy.axhline(1 / len(classes), color="black", linewidth=0.8, linestyle=":", label="chance")
    accuracy.set_xticks(positions, classes, rotation=30)
    accuracy.set_ylabel("zero-shot top-1")
    accuracy.set_title(f"{results['name']}: classes by pool frequency (head: more than t = {results['t']:g} rows)")
    handles = accuracy.get_legend_handles_labels()
    extra = samples.get_legend_handles_labels()
    accuracy.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run_experiment(run: Path, name: str, seeds: list[int], training: Training, classes: Path, images: Path,
                   out_root: Path = REPO / "experiments") -> dict:
    prepared = PreparedRun.read(run)
    head, tail = prepared.head_and_tail()
    results = {"name": name, "run": str(Path(run).resolve()), "t": prepared.t, "class_rows": prepared.class_rows,
               "head_classes": head, "tail_classes": tail, "training": asdict(training),
               "composition": {arm: prepared.composition(arm) for arm in ARMS},
               "arms": {arm: [run_arm(prepared, arm, seed, training, classes, images) for seed in seeds]
                        for arm in ARMS}}
    out = Path(out_root) / name
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", results)
    (out / "table.md").write_text(format_table(results), encoding="utf-8")
    plot(results, out / "per_class.png")
    return results


def main(argv=None) -> None:
    from pipeline.errors import run_job

    defaults = Training()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the folder jobs/experiment_data.py prepared")
    parser.add_argument("--name", required=True, help="results go to experiments/NAME/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--out-root", default=str(REPO / "experiments"))
    parser.add_argument("--classes", default=str(REPO / "data" / "cifar10_classes.txt"))
    parser.add_argument("--images", default=str(CIFAR10_TEST),
                        help="held-out labelled images (default: CIFAR-10's test set)")
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--samples", type=int, default=defaults.samples, help="samples seen by each arm")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    args = parser.parse_args(argv)
    training = Training(model=args.model, samples=args.samples, batch_size=args.batch_size, lr=args.lr,
                        warmup=args.warmup, workers=args.workers)

    def command() -> None:
        results = run_experiment(Path(args.run), args.name, args.seeds, training, Path(args.classes),
                                 Path(args.images), Path(args.out_root))
        print(format_table(results))
        print(f"results: {Path(args.out_root).resolve() / args.name}/results.json, table.md, per_class.png")

    run_job(command)


if __name__ == "__main__":
    main()
