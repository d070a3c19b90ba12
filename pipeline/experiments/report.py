"""The study's numbers as a reviewer reads them: mean and spread per arm and budget, each arm's paired per-seed
difference from raw with a 95% interval, head and tail accuracy against the class-balanced reference, and the
two figures (per class; against samples seen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from pipeline.experiments.arms import ARMS, RAW, REFERENCE


def head_and_tail(class_rows: dict[str, int]) -> tuple[list[str], list[str]]:
    """The more frequent half of the classes in the pool, and the less frequent half."""
    order = sorted(class_rows, key=lambda label: (-class_rows[label], label))
    return order[:len(order) // 2], order[len(order) // 2:]


def reference_accuracy(runs: list[dict], samples: int) -> dict[str, float]:
    """Per-class accuracy of the class-balanced reference at one budget (mean over its seeds): class difficulty."""
    reference = [run["per_class"] for run in runs if run["arm"] == REFERENCE and run["samples"] == samples]
    return {label: float(np.mean([per_class[label] for per_class in reference])) for label in reference[0]}


def with_relative(results: dict) -> list[dict]:
    """Every test run with `head` and `tail`: its mean accuracy over those classes less the reference's."""
    head, tail = head_and_tail(results["class_rows"])
    annotated = []
    for run in results["runs"]:
        reference = reference_accuracy(results["runs"], run["samples"])
        relative = {label: run["per_class"][label] - reference[label] for label in reference}
        annotated.append({**run, "head": float(np.mean([relative[label] for label in head])),
                          "tail": float(np.mean([relative[label] for label in tail]))})
    return annotated


def paired_difference(runs: list[dict], arm: str, samples: int, metric: str) -> tuple[float, float, int] | None:
    """Mean of (arm - raw) over the seeds both have at this budget, the half-width of its 95% t interval, and
    the number of pairs; None without two pairs."""
    by_seed = {(run["arm"], run["seed"]): run[metric] for run in runs if run["samples"] == samples}
    pairs = [by_seed[(arm, seed)] - by_seed[(RAW, seed)] for (name, seed) in by_seed
             if name == arm and (RAW, seed) in by_seed]
    if len(pairs) < 2:
        return None
    half = stats.t.ppf(0.975, len(pairs) - 1) * np.std(pairs, ddof=1) / np.sqrt(len(pairs))
    return float(np.mean(pairs)), float(half), len(pairs)


def _spread(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}"


def format_table(results: dict) -> str:
    """Markdown, one block per budget: an arm's row gives mean ± std over its seeds and the paired difference
    from raw with its 95% interval; head and tail are accuracy less the class-balanced reference's."""
    runs = with_relative(results)
    chosen = results["chosen"]
    lines = [f"Chosen on {results['validation_images']:,} validation images: t = {chosen['t']:g}, "
             f"eps = {chosen['eps']} ({chosen['why']}).", ""]
    for samples in sorted({run["samples"] for run in runs}):
        lines += [f"**{samples:,} samples seen**", "",
                  "| arm | training set (copies) | seeds | top-1 | head vs reference | tail vs reference | "
                  "top-1 − raw (95% CI) | tail − raw (95% CI) |", "|" + " --- |" * 8]
        for arm in [*[name for name in ARMS if name in results["composition"]], REFERENCE]:
            mine = [run for run in runs if run["arm"] == arm and run["samples"] == samples]
            if not mine:
                continue
            composition = results["composition"].get(arm)
            size = f"{composition['samples']:,} ({composition['copies']:,})" if composition else "class-balanced"
            cells = [_spread([run[metric] for run in mine]) for metric in ("top1", "head", "tail")]
            differences = []
            for metric in ("top1", "tail"):
                found = paired_difference(runs, arm, samples, metric) if arm not in (RAW, REFERENCE) else None
                differences.append("" if found is None else f"{found[0]:+.3f} ± {found[1]:.3f} (n={found[2]})")
            lines.append(f"| {arm} | {size} | {len(mine)} | {' | '.join(cells)} | {' | '.join(differences)} |")
        lines.append("")
    return "\n".join(lines)


def plot_per_class(results: dict, path: Path) -> None:
    """Per-class top-1 of each arm less the reference's, at the largest budget, classes from the most to the
    least frequent in the pool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = max(run["samples"] for run in results["runs"])
    reference = reference_accuracy(results["runs"], samples)
    classes = sorted(results["class_rows"], key=lambda label: -results["class_rows"][label])
    arms = [arm for arm in ARMS if arm in results["composition"]]
    width = 0.8 / len(arms)
    figure, axis = plt.subplots(figsize=(11, 4.8))
    for index, arm in enumerate(arms):
        values = np.array([[run["per_class"][label] - reference[label] for label in classes]
                           for run in results["runs"] if run["arm"] == arm and run["samples"] == samples])
        mean = values.mean(axis=0)
        axis.bar(np.arange(len(classes)) + (index - (len(arms) - 1) / 2) * width, mean, width=width, label=arm,
                 yerr=[mean - values.min(axis=0), values.max(axis=0) - mean], capsize=2)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_xticks(np.arange(len(classes)),
                    [f"{label}\n{results['class_rows'][label]:,} rows" for label in classes], fontsize=8)
    axis.set_ylabel("zero-shot top-1 − class-balanced reference")
    axis.set_title(f"{results['name']}: per class at {samples:,} samples seen (bars: min to max over seeds)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_budgets(results: dict, path: Path) -> None:
    """Top-1 against samples seen per arm (mean, bars at one standard deviation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    budgets = sorted({run["samples"] for run in results["runs"]})
    for arm in [*[name for name in ARMS if name in results["composition"]], REFERENCE]:
        values = [[run["top1"] for run in results["runs"] if run["arm"] == arm and run["samples"] == samples]
                  for samples in budgets]
        axis.errorbar(budgets, [np.mean(found) for found in values],
                      yerr=[np.std(found, ddof=1) if len(found) > 1 else 0 for found in values],
                      marker="o", capsize=3, label=arm, linestyle=":" if arm == REFERENCE else "-")
    axis.set_xscale("log")
    axis.set_xticks(budgets, [f"{samples:,}" for samples in budgets])
    axis.set_xlabel("samples seen")
    axis.set_ylabel("zero-shot top-1 (CIFAR-10 test)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(results: dict, out: Path) -> None:
    (out / "table.md").write_text(format_table(results), encoding="utf-8")
    plot_per_class(results, out / "per_class.png")
    plot_budgets(results, out / "budgets.png")
