"""The closed-loop study: does curated data train a better CLIP at equal samples seen, and where does the gain
sit? Settings are chosen on a validation split, arms are ablations of the pipeline, every arm is trained with
several seeds at several budgets, and only the chosen settings meet the test set.

    spark-submit jobs/experiment_data.py --out RUN      (the pool and its stage outputs: see that job)
    python -m pipeline.experiment --run RUN --name NAME [--quick]

1. Sweep, on the validation split only (CIFAR-10 train photos held out of the pool, never served): the pipeline
   arm at each t of a grid from "caps only the head class" to "caps half the classes" (SemDeDup at the grid's
   smallest eps), then each eps of the prepared grid (and none) at the chosen t; one seed, the sweep budget.
   The best validation top-1 chooses.
2. Arms at the chosen t and eps, each budget, each seed: raw, dedup, balance, dedup+balance (the pipeline),
   online (dedup + MetaCLIP online balancing), and `reference`, a class-balanced training set (500 photos per class)
   whose per-class accuracy is each class's difficulty: head and tail gains are read against it.
3. Test set (CIFAR-10's test images): every arm run, once, at the chosen settings.

experiments/NAME/: results.json (every run, the sweep and what it chose), table.md, per_class.png,
budgets.png. Runs go to RUN/train/<arm>-<arm fingerprint>-n<samples>-seed<seed>-<settings>; a finished run and
its evaluations are reused, so the study can run in pieces.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from pipeline import REPO
from pipeline.errors import UserInputError
from pipeline.experiments.arms import (
    ARMS,
    BALANCE,
    PIPELINE,
    RAW,
    REFERENCE,
    ArmSpec,
    PoolFacts,
    arm_shards,
    arm_spec,
    write_arm,
)
from pipeline.experiments.longtail import CIFAR10_TEST
from pipeline.experiments.report import write_report
from pipeline.run.directory import read_manifest, write_json_atomic
from pipeline.run.stages import STAGES

POOL, TRAIN = STAGES["pool"], STAGES["train"]
QUICK_ARMS = (RAW, BALANCE, PIPELINE)
VALIDATION, TEST = "validation", "test"


@dataclass(frozen=True)
class Training:
    """What every run shares: the model and how it is trained (the samples seen are the budget)."""

    model: str = "metacurate-tiny"
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 50
    workers: int = 2

    def min_samples(self) -> int:
        """The smallest training set every loader stream fills a batch from (arm shards split evenly)."""
        return 2 * self.batch_size * self.workers

    def key(self) -> str:
        """Names the training folders: other settings train anew instead of meeting a finished run."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class StudyPlan:
    budgets: tuple[int, ...] = (24_000, 60_000)  # samples seen: 2.5x apart, and the whole study under 2 hours here
    arms: tuple[str, ...] = ARMS
    seeds: int = 5  # for raw and the pipeline
    other_seeds: int = 3  # for the other arms
    reference_seeds: int = 3
    sweep_samples: int = 24_000
    t_values: int = 5

    def seeds_of(self, arm: str) -> list[int]:
        count = {RAW: self.seeds, PIPELINE: self.seeds, REFERENCE: self.reference_seeds}.get(arm, self.other_seeds)
        return list(range(count))


QUICK = StudyPlan(budgets=(12_000,), arms=QUICK_ARMS, seeds=3, other_seeds=3, reference_seeds=1,
                  sweep_samples=4_800)


def t_grid(class_rows: dict[str, int], count: int) -> list[float]:
    """`count` values of t, evenly spaced in log, from capping half the classes (just below the rows of the
    class at the middle rank) to capping only the head class (between the first and second classes)."""
    rows = sorted(class_rows.values(), reverse=True)
    low = 0.9 * rows[len(rows) // 2 - 1]
    high = (rows[0] * rows[1]) ** 0.5
    return [float(round(value)) for value in np.geomspace(low, high, count)]


def _listed(scores: dict) -> str:
    """`value score` pairs (-1: too few samples to train), as the sweep's choice is explained."""
    return ", ".join(f"{'none' if value is None else f'{value:g}'} "
                     f"{'skipped' if score < 0 else f'{score:.3f}'}" for value, score in scores.items())


class Study:
    """Trains and evaluates runs of one prepared RUN; every run and evaluation is kept on disk and reused."""

    def __init__(self, run: Path, training: Training, classes: Path):
        self.run, self.training, self.classes = Path(run), training, Path(classes)
        self.facts = PoolFacts.read(run)
        self.pool = read_manifest(POOL.path(run))

    def train(self, name: str, shards: Path, fingerprint: str, samples: int, seed: int, online: bool) -> Path:
        from pipeline.clip.training.loop import train
        from pipeline.clip.training.options import TrainConfig

        out = TRAIN.path(self.run) / f"{name}-{fingerprint[:8]}-n{samples}-seed{seed}-{self.training.key()}"
        summary_file = out / TRAIN.files["summary"]
        if not summary_file.exists():
            config = TrainConfig(shards=(str(shards),), model=self.training.model, samples=samples,
                                 batch_size=self.training.batch_size, lr=self.training.lr,
                                 warmup=self.training.warmup, workers=self.training.workers, log_every=25,
                                 checkpoint_every=100_000, online_balance=online, seed=seed)
            train(config, out, resume="latest" if (out / TRAIN.files["checkpoints"]).exists() else None)
        return out

    def evaluate(self, out: Path, split: str, images: Path) -> dict:
        """Zero-shot accuracy of a finished run on one split, computed once and kept next to the run."""
        from pipeline.clip.evaluate import evaluate

        kept = out / f"eval-{split}.json"
        if kept.exists():
            return json.loads(kept.read_text())
        summary = json.loads((out / TRAIN.files["summary"]).read_text())
        zero_shot = evaluate(summary["checkpoint"], classes=self.classes, images=images)["zero_shot"]
        result = {"split": split, "images": str(images), "top1": zero_shot["top1"],
                  "mean_per_class": zero_shot["mean_per_class"], "per_class": zero_shot["per_class"],
                  "test_images": zero_shot["images"], "samples_seen": summary["samples_seen"],
                  "train_seconds": summary["train_seconds"]}
        write_json_atomic(kept, result)
        return result

    def run_arm(self, name: str, spec: ArmSpec | None, samples: int, seed: int, split: str, images: Path) -> dict:
        """One run: the arm's training set (`reference`: the class-balanced shards), trained and evaluated."""
        if spec is None:
            shards, fingerprint, online = POOL.file(self.run, "reference"), self.pool["fingerprint"], False
        else:
            manifest = write_arm(self.run, name, self.facts, spec)
            if manifest["rows_out"] < self.training.min_samples():
                raise UserInputError(f"arm {name} ({spec.describe()}) keeps {manifest['rows_out']} samples, too few "
                                     f"to train on (at least {self.training.min_samples()})")
            shards, fingerprint, online = arm_shards(self.run, name), manifest["fingerprint"], spec.online
        out = self.train(name, shards, fingerprint, samples, seed, online)
        return {"arm": name, "seed": seed, "samples": samples, "run": out.name,
                **self.evaluate(out, split, images)}

    def sweep(self, plan: StudyPlan) -> dict:
        """Choose t, then eps, on the validation split alone (one seed, the sweep budget)."""
        validation = POOL.file(self.run, "validation")
        eps_grid = sorted(self.facts.removed)
        first_eps = eps_grid[0] if eps_grid else None
        runs = []

        def trial(t: float, eps: float | None) -> float:
            """Validation top-1 of the pipeline arm at (t, eps); -1 where it keeps too few samples to train."""
            name = f"sweep-t{t:g}-eps{'none' if eps is None else f'{eps:g}'}"
            try:
                result = self.run_arm(name, arm_spec(PIPELINE, t, eps), plan.sweep_samples, 0, VALIDATION,
                                      validation)
            except UserInputError as error:
                runs.append({"arm": name, "t": t, "eps": eps, "split": VALIDATION, "top1": None,
                             "skipped": error.user_message})
                return -1.0
            runs.append({**result, "t": t, "eps": eps})
            return result["top1"]

        t_values = t_grid(self.pool["class_rows"], plan.t_values)
        by_t = {t: trial(t, first_eps) for t in t_values}
        t = max(t_values, key=lambda value: (by_t[value], value))
        by_eps = {first_eps: by_t[t], **{eps: trial(t, eps) for eps in [*eps_grid[1:], None]}}
        eps = max(by_eps, key=lambda value: (by_eps[value], -1 if value is None else value))
        return {"runs": runs, "t_values": t_values, "eps_values": [*eps_grid, None],
                "chosen": {"t": t, "eps": eps,
                           "why": f"validation top-1 by t at eps {first_eps}: {_listed(by_t)}; by eps at t = "
                                  f"{t:g}: {_listed(by_eps)}; the highest chosen"}}

    def arms(self, plan: StudyPlan, chosen: dict, images: Path) -> list[dict]:
        runs = []
        for samples in plan.budgets:
            for name in plan.arms:
                spec = arm_spec(name, chosen["t"], chosen["eps"])
                runs += [self.run_arm(name, spec, samples, seed, TEST, images) for seed in plan.seeds_of(name)]
            runs += [self.run_arm(REFERENCE, None, samples, seed, TEST, images)
                     for seed in plan.seeds_of(REFERENCE)]
        return runs

    def composition(self, plan: StudyPlan) -> dict:
        """What each arm trains on: samples, distinct photos, copies, samples per class."""
        composed = {}
        for name in plan.arms:
            manifest = read_manifest(self.run / name)
            composed[name] = {"describe": manifest["describe"], "samples": manifest["rows_out"],
                              "copies": manifest["rows_out"] - manifest["sources"],
                              "class_samples": manifest["class_samples"]}
        return composed


def run_study(run: Path, name: str, plan: StudyPlan, training: Training, classes: Path, images: Path,
              out_root: Path = REPO / "experiments", sweep_only: bool = False) -> dict:
    study = Study(run, training, classes)
    sweep = study.sweep(plan)
    results = {"name": name, "run": str(Path(run).resolve()), "plan": asdict(plan), "training": asdict(training),
               "class_rows": study.pool["class_rows"], "validation_images": study.pool["validation_images"],
               "sweep": sweep, "chosen": sweep["chosen"]}
    out = Path(out_root) / name
    out.mkdir(parents=True, exist_ok=True)
    if sweep_only:
        write_json_atomic(out / "sweep.json", results)
        return results
    results["runs"] = study.arms(plan, sweep["chosen"], Path(images))
    results["composition"] = study.composition(plan)
    write_json_atomic(out / "results.json", results)
    write_report(results, out)
    return results


def main(argv=None) -> None:
    from pipeline.errors import run_job

    defaults, full = Training(), StudyPlan()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the folder jobs/experiment_data.py prepared")
    parser.add_argument("--name", required=True, help="results go to experiments/NAME/")
    parser.add_argument("--quick", action="store_true",
                        help=f"arms {', '.join(QUICK_ARMS)}; budget {QUICK.budgets[0]:,}; {QUICK.seeds} seeds "
                             f"({QUICK.reference_seeds} for the reference); sweep at {QUICK.sweep_samples:,} samples")
    parser.add_argument("--budgets", type=int, nargs="+", help=f"samples seen (default {list(full.budgets)})")
    parser.add_argument("--arms", nargs="+", choices=ARMS, help="default: all (--quick: three)")
    parser.add_argument("--seeds", type=int, help=f"seeds of raw and the pipeline (default {full.seeds})")
    parser.add_argument("--other-seeds", type=int, help=f"seeds of the other arms (default {full.other_seeds})")
    parser.add_argument("--reference-seeds", type=int, help=f"seeds of the reference (default {full.reference_seeds})")
    parser.add_argument("--sweep-samples", type=int, help=f"samples seen in the sweep (default {full.sweep_samples:,})")
    parser.add_argument("--t-values", type=int, help=f"t values swept (default {full.t_values}; at least 2)")
    parser.add_argument("--sweep-only", action="store_true",
                        help="choose the settings on validation and stop: the test set is not read")
    parser.add_argument("--out-root", default=str(REPO / "experiments"))
    parser.add_argument("--classes", default=str(REPO / "data" / "cifar10_classes.txt"))
    parser.add_argument("--images", default=str(CIFAR10_TEST),
                        help="the test set, read once at the chosen settings (default: CIFAR-10's test set)")
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    args = parser.parse_args(argv)
    training = Training(model=args.model, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                        workers=args.workers)
    plan = QUICK if args.quick else full
    overrides = {"budgets": tuple(args.budgets) if args.budgets else None,
                 "arms": tuple(args.arms) if args.arms else None, "seeds": args.seeds,
                 "other_seeds": args.other_seeds, "reference_seeds": args.reference_seeds,
                 "sweep_samples": args.sweep_samples, "t_values": args.t_values}
    plan = replace(plan, **{key: value for key, value in overrides.items() if value is not None})

    def command() -> None:
        if plan.t_values < 2 or min(plan.seeds, plan.other_seeds, plan.reference_seeds) < 1:
            raise UserInputError("--t-values must be at least 2 and every arm needs a seed")
        if not args.sweep_only and not Path(args.images).exists():
            raise UserInputError(f"{args.images}: test images not found")
        results = run_study(Path(args.run), args.name, plan, training, Path(args.classes), Path(args.images),
                            Path(args.out_root), sweep_only=args.sweep_only)
        out = Path(args.out_root).resolve() / args.name
        print(f"chosen on validation: t = {results['chosen']['t']:g}, eps = {results['chosen']['eps']}"
              f" ({results['chosen']['why']})")
        if args.sweep_only:
            print(f"sweep: {out}/sweep.json")
            return
        print((out / "table.md").read_text())
        print(f"results: {out}/results.json, table.md, per_class.png, budgets.png")

    run_job(command)


if __name__ == "__main__":
    main()
