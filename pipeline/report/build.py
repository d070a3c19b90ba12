"""A run's report: one section per thing a curator checks before training, each drawn from what exists.

Writes OUT/index.html (self-contained: figures and thumbnails embedded), the figures as PNG files beside it,
and OUT/report.json with the numbers shown. OUT is replaced in one rename, so a crash never leaves half a report.
"""

from __future__ import annotations

import json
import shutil
import uuid
from html import escape
from pathlib import Path

import polars as pl

from pipeline.report import figures
from pipeline.report.page import Section, document, table, thumbnail
from pipeline.run.data import Run
from pipeline.run.directory import replace_dir
from pipeline.run.stages import IMAGE_STAGES, STAGES, TEXT_STAGES

REPORT_DIR = "report"
HTML = "index.html"
NUMBERS = "report.json"
SCORE_FILTER = STAGES["score_filter"]
MIN_POOL_SHOWN = 20  # captions a language needs for its own entry curve in the report


def _funnel(run: Run, numbers: dict) -> Section:
    section = Section("Stage funnel")
    rows = run.funnel()
    numbers["funnel"] = rows.to_dicts()
    section.add(table(
        ["stage", "rows in", "rows out", "rejected", "rejected by reason", "wall seconds"],
        [(row["stage"], row["rows_in"], row["rows_out"], row["rejected"],
          ", ".join(f"{item['reason']}: {item['rows']:,}" for item in row["reasons"]) or "none",
          row["wall_seconds"]) for row in rows.iter_rows(named=True)],
        table_id="funnel", row_keys=rows["stage"].to_list()))
    missing = [stage.folder for stage in TEXT_STAGES + IMAGE_STAGES if not run.has(stage.folder)]
    if missing:
        section.note(f"Not run yet: {', '.join(missing)}. The report shows what exists.")
    section.figure("funnel.png", figures.funnel(rows), "rows out and rejected rows of each stage")
    return section


def _short(caption: str, limit: int = 120) -> str:
    return caption if len(caption) <= limit else caption[:limit - 1] + "\u2026"


def _entry_table(run: Run, entries: pl.DataFrame, table_id: str) -> str:
    examples = run.entry_examples(entries["entry_id"].to_list())
    columns = ["entry", "count", "p", "selected"] + (["selected_final"] if "selected_final" in entries.columns else [])
    headers = ["entry", "matches", "p", "selected"] + (["after dedup"] if "selected_final" in columns else [])
    rows = [[row[column] for column in columns] + [" | ".join(map(_short, examples[row["entry_id"]]))]
            for row in entries.iter_rows(named=True)]
    return table(headers + ["example captions"], rows, table_id=table_id, row_keys=entries["entry_id"].to_list())


def _balancing(run: Run, numbers: dict, examples: int, seed: int) -> Section:
    section = Section("Balancing")
    counts = run.entry_counts()
    t = run.t
    threshold = pl.col("t") if "t" in counts.columns else pl.lit(t)  # worldwide: each entry's language's t
    head = counts.filter(pl.col("count") > threshold) if t is not None else counts.head(0)
    tail = counts.filter(pl.col("count") <= threshold) if t is not None else counts
    numbers["balancing"] = {"t": t, "entries_matched": len(counts), "head_entries": len(head),
                            "tail_entries": len(tail),
                            "tail_share": len(tail) / max(len(counts), 1) if t is not None else None,
                            "matches": int(counts["count"].sum()), "selected_matches": int(counts["selected"].sum())}
    if t is None:
        section.note("The selection stage has not run: counts before balancing only.")
    else:
        section.note(f"t = {t:g}: {len(counts):,} entries matched at least once; {len(head):,} head entries "
                     f"(more than t matches) are drawn with p = t / matches, {len(tail):,} tail entries keep all "
                     f"their samples. A caption matches several entries and is kept when any of them draws it, so "
                     f"a head entry keeps more than t where its captions also match tail entries (right).")
    section.figure("entry_counts.png", figures.entry_distribution(counts, t),
                   "samples per entry, entries ranked by matches (log-log); the realised cap per head entry")
    section.add("<h3>Top head entries</h3>")
    section.add(_entry_table(run, (head if t is not None else counts).head(examples), "head-entries"))
    sample = tail.sample(n=min(examples, len(tail)), seed=seed).sort(["count", "entry_id"], descending=[True, False])
    section.add(f"<h3>A sample of tail entries ({len(sample)} of {len(tail):,}, seed {seed})</h3>")
    section.add(_entry_table(run, sample, "tail-entries"))
    return section


def _languages(run: Run, numbers: dict, shown: int = 6) -> Section | None:
    """Worldwide runs: the language mix before and after curation, each language's t, and its entries' curve."""
    mix, thresholds = run.language_mix(), run.language_thresholds
    if not len(mix):
        return None
    section = Section("Languages")
    numbers["languages"] = {"mix": mix.to_dicts(), "thresholds": thresholds}
    section.note("Each caption was matched against its own language's vocabulary; each language's t is English's "
                 "or the one whose tail share (matches in entries with count <= t) is nearest English's.")
    rows = []
    for row in mix.iter_rows(named=True):
        threshold = thresholds.get(row["language"], {})
        rows.append((row["language"], row["pool"], row.get("selected"), threshold.get("t"), threshold.get("how"),
                     _percent(threshold.get("tail_share"))))
    section.add(table(["language", "pool", "selected", "t", "t set by", "tail share"], rows, table_id="languages"))
    section.figure("language_mix.png", figures.language_mix(mix), "each language's share before and after")
    if thresholds:
        languages = [row["language"] for row in mix.iter_rows(named=True)
                     if row["language"] in thresholds and row["pool"] >= MIN_POOL_SHOWN][:shown]
        section.figure("language_entries.png", figures.language_entry_distributions(run.entry_counts(), thresholds,
                                                                                   languages),
                       "per language: samples per entry before and after balancing, and its t")
    return section


def _matching(run: Run, numbers: dict, examples: int) -> Section:
    section = Section("Matching")
    histogram = run.matches_per_caption()
    captions = int(histogram["captions"].sum())
    unmatched = int(histogram.filter(pl.col("matches") == 0)["captions"].sum())
    numbers["matching"] = {"captions": captions, "unmatched": unmatched,
                           "histogram": dict(zip(histogram["matches"].to_list(), histogram["captions"].to_list()))}
    section.note(f"{captions:,} captions; {unmatched:,} matched no entry ({unmatched / max(captions, 1):.1%}).")
    section.figure("matches_per_caption.png", figures.matches_histogram(histogram), "captions by entries matched")
    if unmatched:
        rows = run.unmatched_captions(examples)
        section.add("<h3>Captions that matched nothing</h3>")
        section.add(table(["uid", "caption"], rows.rows(), table_id="unmatched"))
    return section


def _percent(share: float | None) -> str:
    return "" if share is None else f"{share:.3%}"


def _separation(run: Run, numbers: dict, section: Section) -> None:
    """The dedup stage's separation table: how its embeddings told known duplicates from distinct images."""
    manifest = run.manifests.get(STAGES["dedup"].folder) or {}
    if not manifest.get("separation"):
        return
    numbers["separation"] = manifest["separation"]
    applied = set(manifest.get("eps") or [])
    rows = [(f"{row['eps']:g}" + (" (applied)" if row["eps"] in applied else ""),
             *(_percent(row[key]) for key in ("duplicate_recall", "false_merge_rate", "distinct_removed")))
            for row in manifest["separation"]]
    section.add("<h3>How the embeddings separate duplicates from distinct images</h3>")
    if manifest.get("auto"):
        section.note(manifest["auto"]["says"])
    section.add(table(["eps", "known duplicate pairs merged", "distinct pairs merged",
                       "distinct images it would remove"], rows, table_id="separation"))


def _dedup(run: Run, numbers: dict, examples: int) -> Section:
    section = Section("Image dedup")
    _separation(run, numbers, section)
    groups = run.duplicate_groups()
    numbers["dedup"] = {kind: {"removed": len(rows), "groups": rows["duplicate_of"].n_unique()}
                        for (kind,), rows in groups.group_by(["kind"])}
    if not len(groups):
        section.note("No duplicates were found.")
        return section
    section.note(", ".join(f"{kind}: {value['removed']:,} removed in {value['groups']:,} groups"
                           for kind, value in sorted(numbers["dedup"].items())))
    section.figure("dedup_groups.png", figures.cluster_sizes(groups), "duplicate groups by size")
    pairs = groups.unique(["kind", "duplicate_of"], keep="first", maintain_order=True).head(examples)
    uids = pairs["uid"].to_list() + pairs["duplicate_of"].to_list()
    images = run.image_bytes(uids)
    captions = dict(run.captions(uids).select("uid", "caption").iter_rows())
    rows = [(f'<span class="pair">{thumbnail(images.get(row["duplicate_of"]))}{thumbnail(images.get(row["uid"]))}'
             f"</span>", row["kind"], row["detail"], row["group_size"],
             captions.get(row["duplicate_of"], ""), captions.get(row["uid"], ""))
            for row in pairs.iter_rows(named=True)]
    section.add("<h3>Example duplicate pairs (kept, removed)</h3>")
    section.add(table(["images", "kind", "why", "group size", "kept caption", "removed caption"], rows,
                      table_id="duplicate-pairs", raw_columns=(0,)))
    return section


def _score_filters(run: Run, numbers: dict) -> Section:
    """What the score filters kept and why, with the kept size against the CLIP-score threshold."""
    section = Section("Score filters")
    manifest = run.manifests[SCORE_FILTER.folder]
    decisions = run.table(SCORE_FILTER.folder, ["score", "kept", "reason"])
    clusters = (pl.read_parquet(SCORE_FILTER.file(run.path, "clusters"))
                if SCORE_FILTER.file(run.path, "clusters").is_file() else None)
    numbers["score_filters"] = {key: manifest.get(key) for key in ("rows_in", "rows_out", "rejected", "threshold",
                                                                   "image_based", "density")}
    rejected = ", ".join(f"{reason}: {rows:,}" for reason, rows in sorted(manifest["rejected"].items())) or "none"
    threshold = manifest.get("threshold")
    section.note(f"{manifest['rows_out']:,} of {manifest['rows_in']:,} samples kept; rejected {rejected}."
                 + (f" Least CLIP score kept: {threshold:.4f}." if threshold is not None else ""))
    section.figure("score_filters.png", figures.score_filters(decisions["score"].to_numpy(), threshold, clusters),
                   "kept size against the CLIP-score threshold; density pruning per cluster")
    return section


def _training(runs, numbers: dict) -> Section:
    section = Section("Training")
    curves = [(training.name, training.loss(), training.zero_shot()) for training in runs]
    numbers["training"] = {name: {"steps": loss["step"].max(), "final_loss": loss["loss"].to_list()[-1] if len(loss)
                                  else None, "zero_shot_top1": zero_shot["top1"].to_list()}
                           for name, loss, zero_shot in curves}
    section.figure("training.png", figures.training_curves(curves), "loss and zero-shot top-1 against samples seen")
    rows = [(name, value["steps"], value["final_loss"],
             value["zero_shot_top1"][-1] if value["zero_shot_top1"] else "not evaluated while training")
            for name, value in numbers["training"].items()]
    section.add(table(["training run", "steps", "last loss", "last zero-shot top-1"], rows, table_id="training"))
    return section


def build_sections(run: Run, train: list[Path] = (), examples: int = 12, seed: int = 0) -> tuple[list[Section], dict]:
    numbers: dict = {"run": str(run.path.resolve()), "stages": list(run.manifests)}
    sections = [_funnel(run, numbers)]
    if run.has(*(STAGES[name].folder for name in ("count", "match", "ingest"))):
        sections.append(_balancing(run, numbers, examples, seed))
        sections += [section for section in [_languages(run, numbers)] if section is not None]
        sections.append(_matching(run, numbers, examples))
    if run.has(STAGES["validate"].folder) or run.has(STAGES["dedup"].folder):
        sections.append(_dedup(run, numbers, examples))
    if run.has(SCORE_FILTER.folder):
        sections.append(_score_filters(run, numbers))
    training = run.training_runs(list(train))
    if training:
        sections.append(_training(training, numbers))
    return sections, numbers


def write_report(run_dir: Path, out: Path | None = None, train: list[Path] = (), examples: int = 12,
                 seed: int = 0) -> Path:
    """Build the report of `run_dir` into `out` (default RUN/report); returns the HTML file's path."""
    run = Run(run_dir)
    out = Path(out) if out is not None else run.path / REPORT_DIR
    sections, numbers = build_sections(run, train, examples, seed)
    intro = (f'<p class="note">Run <code>{escape(str(run.path.resolve()))}</code>; stages: '
             f"{escape(', '.join(run.manifests))}.</p>")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex}")
    staging.mkdir()
    try:
        for section in sections:
            for name, payload in section.figures.items():
                (staging / name).write_bytes(payload)
        (staging / NUMBERS).write_text(json.dumps(numbers, indent=2, default=str) + "\n")
        (staging / HTML).write_text(document(f"metacurate report: {run.path.name}", intro, sections),
                                    encoding="utf-8")
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out / HTML
