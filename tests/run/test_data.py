"""Reading a run directory back (pipeline.run.data) on a small hand-written run: counts equal what the stages
wrote, unmatched captions include the match stage's no_match rejects, unfinished stages are not read."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError
from pipeline.report import write_report
from pipeline.run.data import Run, TrainingRun
from pipeline.run.directory import MANIFEST, REJECT_SCHEMA, REJECTS

CAPTIONS = {"u1": "a dog", "u2": "a cat and a dog", "u3": "nothing here", "u4": "dog, dog"}


def stage(run: Path, name: str, rows: list[dict] | None, manifest: dict, rejects: list[dict] = (),
          file: str = "part-00000.parquet") -> None:
    folder = run / name
    folder.mkdir(parents=True)
    if rows is not None:
        pq.write_table(pa.Table.from_pylist(rows), folder / file)
    if rejects:
        (folder / REJECTS).mkdir()
        pq.write_table(pa.Table.from_pylist([{"source_file": None, "source_row": None, "preview": None, **row}
                                             for row in rejects], schema=REJECT_SCHEMA),
                       folder / REJECTS / "part-00000.parquet")
    reasons: dict[str, int] = {}
    for row in rejects:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    (folder / MANIFEST).write_text(json.dumps({"stage": name, "started_at": "2026-11-23T00:00:00", "wall_seconds": 0.5,
                                               "rejected": reasons, **manifest}))


@pytest.fixture
def run(tmp_path) -> Path:
    run = tmp_path / "run"
    stage(run, "ingest", [{"uid": uid, "url": f"http://127.0.0.1/{uid}.jpg", "caption": caption}
                          for uid, caption in CAPTIONS.items()], {"rows_in": 5, "rows_out": 4},
          [{"uid": "u5", "reason": "missing_caption", "detail": "caption is empty"}])
    stage(run, "matches", [{"uid": "u1", "entry_ids": [0]}, {"uid": "u2", "entry_ids": [0, 1]},
                           {"uid": "u4", "entry_ids": [0]}], {"rows_in": 4, "rows_out": 3},
          [{"uid": "u3", "reason": "no_match", "detail": "caption matches no vocabulary entry"}])
    stage(run, "entry_counts", [{"entry_id": 0, "entry": "dog", "count": 3, "p": 2 / 3, "selected": 2},
                                {"entry_id": 1, "entry": "cat", "count": 1, "p": 1.0, "selected": 1},
                                {"entry_id": 2, "entry": "bird", "count": 0, "p": 0.0, "selected": 0}],
          {"rows_in": 3, "rows_out": 3}, file="counts.parquet")
    stage(run, "selection", [{"uid": "u1", "caption": "a dog"}, {"uid": "u2", "caption": "a cat and a dog"}],
          {"rows_in": 3, "rows_out": 2, "t": 2, "selected": 2, "expected_size": 2.3},
          [{"uid": "u4", "reason": "balanced_out", "detail": None}])
    (run / ".download.tmp-0123").mkdir()  # a crashed stage: no manifest, never read
    (run / "validate").mkdir()
    return run


def test_stages_in_pipeline_order_and_the_funnel_is_the_manifests(run):
    loaded = Run(run)
    assert list(loaded.manifests) == ["ingest", "matches", "entry_counts", "selection"]
    funnel = loaded.funnel().to_dicts()
    assert [(row["stage"], row["rows_in"], row["rows_out"], row["rejected"]) for row in funnel] == [
        ("ingest", 5, 4, 1), ("matches", 4, 3, 1), ("entry_counts", 3, 3, 0), ("selection", 3, 2, 1)]
    assert funnel[1]["reasons"] == [{"reason": "no_match", "rows": 1}]
    assert loaded.t == 2 and not loaded.has("validate")


def test_unmatched_captions_include_the_no_match_rejects(run):
    loaded = Run(run)
    histogram = dict(loaded.matches_per_caption().iter_rows())
    assert histogram == {0: 1, 1: 2, 2: 1} and sum(histogram.values()) == loaded.manifests["matches"]["rows_in"]
    assert loaded.unmatched_captions().rows() == [("u3", "nothing here")]


def test_entries_counts_tail_and_examples(run):
    loaded = Run(run)
    counts = loaded.entry_counts()
    assert counts["entry"].to_list() == ["dog", "cat"]  # matched entries only, most matched first
    assert loaded.tail_share() == 0.5  # cat (1 <= t) is tail, dog (3 > t) is head
    assert loaded.entry_examples([0, 1, 2], per_entry=2) == {0: ["a dog", "a cat and a dog"], 1: ["a cat and a dog"],
                                                             2: []}
    assert loaded.duplicate_groups().is_empty() and loaded.image_bytes(["u1"]) == {}


def test_report_of_a_text_run_lists_the_unmatched_caption(run):
    html = write_report(run).read_text()
    numbers = json.loads((run / "report" / "report.json").read_text())
    assert numbers["matching"]["unmatched"] == 1 and numbers["matching"]["captions"] == 4
    assert numbers["balancing"] | {"tail_share": None} == {
        "t": 2, "entries_matched": 2, "head_entries": 1, "tail_entries": 1, "tail_share": None, "matches": 4,
        "selected_matches": 3}
    assert "nothing here" in html and "Not run yet: download, validate, embed, dedup, rebalance, shards" in html
    assert sorted(path.name for path in (run / "report").glob("*.png")) == [
        "entry_counts.png", "funnel.png", "matches_per_caption.png"]
    assert "report" not in Run(run).manifests  # the report is not taken for a stage


def test_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="no such run directory"):
        Run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no finished stage"):
        Run(tmp_path / "empty")


def test_training_logs_keep_one_record_per_step_after_a_resume(tmp_path):
    records = [{"step": 10, "samples_seen": 320, "loss": 3.4, "lr": 1e-3}, {"step": 20, "samples_seen": 640,
                                                                             "loss": 3.1, "lr": 1e-3},
               {"step": 20, "samples_seen": 640, "loss": 3.0, "lr": 1e-3}]  # killed after 20, resumed from 10
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    loss = TrainingRun(tmp_path).loss()
    assert loss["step"].to_list() == [10, 20] and loss["loss"].to_list() == [3.4, 3.0]
    assert TrainingRun(tmp_path).zero_shot().is_empty()
