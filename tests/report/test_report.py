"""Run reports: the demo run's report renders in headless chromium with its figures, and its numbers are the
manifests'; a run with stages missing still gets a report of what exists."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pipeline.report import write_report
from pipeline.run.directory import read_manifest
from pipeline.run.stages import TEXT_STAGES
from pipeline.semantic.separation import AUTO_EPS
from tests.browser import render

TEXT_FOLDERS = [stage.folder for stage in TEXT_STAGES]


pytestmark = pytest.mark.slow


def as_number(text: str) -> int:
    return int(text.replace(",", ""))


def assert_renders(html: Path):
    page = render(html)
    assert page.errors == [] and page.broken_images == [], (page.errors, page.broken_images)
    return page


def assert_funnel_is_the_manifests(page, run_dir: Path, stages: list[str]) -> None:
    rows = page.tables["funnel"]
    assert [row["key"] for row in rows] == stages
    for row in rows:
        manifest = read_manifest(run_dir / row["key"])
        rows_in, rows_out, rejected, reasons = row["cells"][1:5]
        assert (as_number(rows_in), as_number(rows_out)) == (manifest["rows_in"], manifest["rows_out"])
        assert as_number(rejected) == sum(manifest["rejected"].values())
        for reason, count in manifest["rejected"].items():
            assert f"{reason}: {count:,}" in reasons


def test_demo_run_report_renders_with_its_figures_and_the_manifests_numbers(demo_run, demo_training, tmp_path):
    run_dir = demo_run[0]
    html = write_report(run_dir, tmp_path / "report", train=[demo_training])
    page = assert_renders(html)
    stages = ["ingest", "matches", "entry_counts", "selection", "download", "validate", "embed", "dedup",
              "decontaminate", "rebalance", "shards"]
    assert_funnel_is_the_manifests(page, run_dir, stages)
    assert page.headings[:2] == ["Stage funnel", "Balancing"] and {"Matching", "Image dedup", "Training"} <= set(
        page.headings)

    figures = ["funnel.png", "entry_counts.png", "matches_per_caption.png", "dedup_groups.png", "training.png"]
    for name in figures:
        with Image.open(tmp_path / "report" / name) as figure:
            assert figure.format == "PNG" and figure.width > 400
    numbers = json.loads((tmp_path / "report" / "report.json").read_text())
    selection, validate = read_manifest(run_dir / "selection"), read_manifest(run_dir / "validate")
    assert numbers["balancing"]["t"] == selection["t"] == 40
    assert numbers["balancing"]["entries_matched"] == read_manifest(run_dir / "entry_counts")["entries_matched"]
    assert f"t = {selection['t']:g}" in page.text
    assert numbers["matching"]["captions"] == read_manifest(run_dir / "matches")["rows_in"]
    removed = numbers["dedup"]["exact"]["removed"] + numbers["dedup"].get("near", {}).get("removed", 0)
    assert removed == validate["rejected"]["duplicate"] > 0

    # Head entries hold more than t matches and are capped; the tail sample keeps all its samples.
    head, tail = page.tables["head-entries"], page.tables["tail-entries"]
    assert head and all(as_number(row["cells"][1]) > 40 for row in head)
    assert tail and all(row["cells"][1] == row["cells"][3] for row in tail)
    assert all(row["cells"][-1] for row in head)  # example captions shown
    # Every duplicate pair shows two decoded thumbnails (kept, removed); 5 figures + 2 per pair in all.
    pairs = page.tables["duplicate-pairs"]
    assert len(pairs) == 12 and page.images == len(figures) + 2 * len(pairs)
    assert numbers["training"]["tiny"]["steps"] == 10 and len(numbers["training"]["tiny"]["zero_shot_top1"]) == 2
    # The dedup stage's separation table, one row per candidate eps, the applied one marked
    dedup = read_manifest(run_dir / "dedup")
    separation = page.tables["separation"]
    assert len(separation) == len(dedup["separation"]) == len(AUTO_EPS)
    assert [row["cells"][0] for row in separation if "applied" in row["cells"][0]] == [
        f"{eps:g} (applied)" for eps in dedup["eps"]]
    assert dedup["auto"]["says"] in page.text

    again = write_report(run_dir, tmp_path / "report", train=[demo_training])  # idempotent: the same page
    assert again.read_text() == html.read_text()


def test_a_run_with_missing_stages_gets_a_report_of_what_exists(demo_run, demo_training, tmp_path):
    text_only = tmp_path / "text-only"
    for stage in TEXT_FOLDERS:
        shutil.copytree(demo_run[0] / stage, text_only / stage)
    shutil.copytree(demo_training, text_only / "train")  # found without --train
    page = assert_renders(write_report(text_only))
    assert_funnel_is_the_manifests(page, text_only, list(TEXT_FOLDERS))
    assert "Not run yet: download, validate, embed, dedup, rebalance, shards" in page.text
    assert "Image dedup" not in page.headings and "Training" in page.headings

    ingest_only = tmp_path / "ingest-only"
    shutil.copytree(demo_run[0] / "ingest", ingest_only / "ingest")
    page = assert_renders(write_report(ingest_only))
    assert page.headings == ["Stage funnel"] and page.images == 1


def test_report_cli_writes_into_the_run_and_names_a_wrong_folder(demo_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(demo_run[0] / "ingest", run_dir / "ingest")
    done = subprocess.run([sys.executable, "-m", "pipeline.report", "--run", str(run_dir)], capture_output=True,
                          text=True, check=True)
    assert str(run_dir / "report" / "index.html") in done.stdout and (run_dir / "report" / "funnel.png").is_file()
    for wrong in (tmp_path / "missing", tmp_path):
        failed = subprocess.run([sys.executable, "-m", "pipeline.report", "--run", str(wrong)], capture_output=True,
                                text=True)
        assert failed.returncode == 2 and str(wrong) in failed.stderr and "Traceback" not in failed.stderr
