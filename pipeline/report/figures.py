"""The report's figures, one function each: data frames of pipeline.run.data in, a matplotlib Figure out.

The notebooks draw with the same functions, so a figure looks the same wherever it is seen.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _figure(width: float, height: float, columns: int = 1):
    """A Figure of its own (no pyplot state), so the report runs headless and notebooks show it inline."""
    figure = Figure(figsize=(width, height))
    return figure, figure.subplots(1, columns, squeeze=False)[0]


def funnel(funnel_rows: pl.DataFrame):
    """Rows out of each stage, with the rows it rejected stacked beside, largest reasons named."""
    stages = funnel_rows["stage"].to_list()[::-1]
    kept = np.array(funnel_rows["rows_out"].fill_null(0).to_list()[::-1])
    rejected = np.array(funnel_rows["rejected"].to_list()[::-1])
    figure, (axis,) = _figure(8, 0.45 * len(stages) + 1.2)
    axis.barh(stages, kept, color="tab:blue", label="rows out")
    axis.barh(stages, rejected, left=kept, color="tab:red", label="rejected")
    for position, reasons in enumerate(funnel_rows["reasons"].to_list()[::-1]):
        if reasons:
            text = ", ".join(f"{item['reason']} {item['rows']:,}" for item in reasons[:3])
            axis.text(kept[position] + rejected[position], position, f"  {text}", va="center", fontsize=8)
    axis.set_xlabel("rows")
    axis.set_xlim(0, max(1, (kept + rejected).max()) * 1.45)
    axis.set_title("stage funnel")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def entry_distribution(counts: pl.DataFrame, t: float | None):
    """MetaCLIP's picture: entries ranked by their match count, log-log, before and after balancing, t marked;
    beside it, once balanced, the share of its samples each head entry kept against the cap t / matches."""
    figure, axes = _figure(13 if t is not None else 8, 4.5, 2 if t is not None else 1)
    axis = axes[0]
    curves = [("count", "matches in the pool", "tab:gray"), ("selected", "selected (text balancing)", "tab:blue"),
              ("selected_final", "after image dedup and rebalancing", "tab:green")]
    for column, label, color in curves:
        if column in counts.columns:
            values = np.sort(counts[column].fill_null(0).to_numpy())[::-1]
            values = values[values > 0]
            axis.loglog(np.arange(1, len(values) + 1), values, label=label, color=color, linewidth=1.5)
    if t is not None:
        axis.axhline(t, color="tab:red", linestyle="--", linewidth=1, label=f"t = {t:g}")
    axis.set_xlabel("entry rank (by matches in the pool)")
    axis.set_ylabel("samples per entry")
    axis.set_title("samples per entry, entries ranked by matches in the pool")
    axis.legend(fontsize=8)
    if t is not None:
        _realised_cap(axes[1], counts, t)
    figure.tight_layout()
    return figure


def _realised_cap(axis, counts: pl.DataFrame, t: float) -> None:
    """Per head entry, selected / matches against t / matches: above the line, captions that also matched
    other entries (a tail entry keeps its caption whole) kept more of the entry than its own cap."""
    head = counts.filter(pl.col("count") > t)
    matches = head["count"].to_numpy().astype(float)
    if len(matches):
        axis.scatter(matches, head["selected"].fill_null(0).to_numpy() / matches, s=8, color="tab:blue",
                     label="selected / matches (text balancing)")
        line = np.geomspace(matches.min(), matches.max(), 50)
        axis.plot(line, t / line, color="tab:red", linestyle="--", linewidth=1, label="t / matches (the cap alone)")
        axis.set_xscale("log")
        axis.set_ylim(0, 1.05)
        axis.legend(fontsize=8)
    axis.set_xlabel("matches in the pool (head entries: more than t)")
    axis.set_ylabel("share of the entry's samples kept")
    axis.set_title(f"realised cap per head entry ({len(matches):,} entries)")


def language_mix(mix: pl.DataFrame, top: int = 15):
    """Each language's share of the pool and of the selection (the most frequent `top` languages)."""
    figure, (axis,) = _figure(10, 3.8)
    shown = mix.head(top)
    positions = np.arange(len(shown))
    for offset, column, color in ((-0.2, "pool", "tab:gray"), (0.2, "selected", "tab:blue")):
        if column in shown.columns:
            values = shown[column].to_numpy() / max(int(mix[column].sum()), 1)
            axis.bar(positions + offset, values, width=0.4, color=color,
                     label="pool (ingested)" if column == "pool" else "selection (balanced)")
    axis.set_xticks(positions, shown["language"].fill_null("?").to_list())
    axis.set_ylabel("share of captions")
    axis.set_title("language mix before and after curation")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def language_entry_distributions(counts: pl.DataFrame, thresholds: dict[str, dict], languages: list[str]):
    """Per language: its entries ranked by matches (log-log), before and after balancing, its own t marked."""
    figure, axes = _figure(4 * len(languages), 3.6, len(languages))
    for axis, language in zip(axes, languages):
        rows = counts.filter(pl.col("language") == language)
        for column, label, color in (("count", "matches", "tab:gray"), ("selected", "selected", "tab:blue")):
            values = np.sort(rows[column].fill_null(0).to_numpy())[::-1]
            values = values[values > 0]
            axis.loglog(np.arange(1, len(values) + 1), values, color=color, label=label, linewidth=1.5)
        t = thresholds.get(language, {}).get("t")
        if t is not None:
            axis.axhline(t, color="tab:red", linestyle="--", linewidth=1, label=f"t = {t:g}")
        axis.set_title(f"{language}: {len(rows):,} entries matched")
        axis.set_xlabel("entry rank")
        axis.legend(fontsize=7)
    axes[0].set_ylabel("samples per entry")
    figure.tight_layout()
    return figure


def matches_histogram(histogram: pl.DataFrame):
    """Captions by the number of entries they matched (0: the caption names nothing in the vocabulary)."""
    figure, (axis,) = _figure(8, 3.5)
    matches, captions = histogram["matches"].to_numpy(), histogram["captions"].to_numpy()
    colors = ["tab:red" if value == 0 else "tab:blue" for value in matches]
    axis.bar(matches, captions, color=colors, width=0.8)
    axis.set_xlabel("entries matched by the caption")
    axis.set_ylabel("captions")
    axis.set_title("matches per caption (red: matched nothing, dropped by balancing)")
    figure.tight_layout()
    return figure


def cluster_sizes(groups: pl.DataFrame):
    """Duplicate groups by size (kept sample + its removed duplicates), one bar series per dedup kind."""
    figure, (axis,) = _figure(8, 3.5)
    per_group = groups.unique(["kind", "duplicate_of"]).group_by("kind", "group_size").len("groups")
    kinds = sorted(per_group["kind"].unique().to_list())
    width = 0.8 / max(1, len(kinds))
    for index, kind in enumerate(kinds):
        rows = per_group.filter(pl.col("kind") == kind).sort("group_size")
        axis.bar(rows["group_size"].to_numpy() + index * width - 0.4 + width / 2, rows["groups"].to_numpy(),
                 width=width, label=kind)
    sizes = per_group["group_size"].to_numpy()
    if len(sizes):  # whole sizes only, with room around them: one size is one bar, not an axis from 1.6 to 2.4
        axis.set_xlim(sizes.min() - 1, sizes.max() + 1)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("group size (kept sample + removed duplicates)")
    axis.set_ylabel("groups")
    axis.set_title("duplicate groups removed by image dedup")
    if kinds:
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def score_filters(scores: np.ndarray, threshold: float | None, clusters: pl.DataFrame | None = None):
    """Kept samples against the CLIP-score threshold (this run's marked); beside it, when density pruning ran, each
    concept cluster's pruned share against its complexity."""
    figure, axes = _figure(11 if clusters is not None else 6, 3.8, 2 if clusters is not None else 1)
    axis = axes[0]
    ordered = np.sort(np.asarray(scores, np.float64))
    grid = np.linspace(ordered[0], ordered[-1], 50) if len(ordered) else np.zeros(0)
    axis.plot(grid, len(ordered) - np.searchsorted(ordered, grid, side="left"), color="tab:blue")
    if threshold is not None:
        axis.axvline(threshold, color="tab:red", linestyle="--", label=f"this run: {threshold:.3f}")
        axis.legend(fontsize=8)
    axis.set_xlabel("least CLIP score kept (image-caption cosine)")
    axis.set_ylabel("samples kept")
    axis.set_title("kept size against the CLIP-score threshold")
    if clusters is not None:
        shown = clusters.filter(pl.col("size") > 0)
        axes[1].scatter(shown["complexity"].to_numpy(), 1 - shown["kept"].to_numpy() / shown["size"].to_numpy(),
                        s=12 + 60 * shown["size"].to_numpy() / max(1, shown["size"].max()), color="tab:purple")
        axes[1].set_xlabel("cluster complexity (spread x distance to other clusters)")
        axes[1].set_ylabel("share pruned")
        axes[1].set_title("density-based pruning per concept cluster (dot: size)")
    figure.tight_layout()
    return figure


def training_curves(runs: list[tuple[str, pl.DataFrame, pl.DataFrame]]):
    """Loss and, where evaluated while training, zero-shot top-1 against samples seen; one line per run."""
    with_zero_shot = any(len(zero_shot) for _, _, zero_shot in runs)
    figure, axes = _figure(10 if with_zero_shot else 6, 3.8, 2 if with_zero_shot else 1)
    loss_axis = axes[0]
    for name, loss, zero_shot in runs:
        line, = loss_axis.plot(loss["samples_seen"].to_numpy(), loss["loss"].to_numpy(), label=name)
        if len(zero_shot):
            axes[1].plot(zero_shot["samples_seen"].to_numpy(), zero_shot["top1"].to_numpy(), marker="o",
                            color=line.get_color(), label=name)
    loss_axis.set_xlabel("samples seen")
    loss_axis.set_ylabel("contrastive loss")
    loss_axis.set_title("training loss")
    loss_axis.legend(fontsize=8)
    if with_zero_shot:
        axes[1].set_xlabel("samples seen")
        axes[1].set_ylabel("zero-shot top-1")
        axes[1].set_title("zero-shot accuracy while training")
        axes[1].legend(fontsize=8)
    figure.tight_layout()
    return figure
