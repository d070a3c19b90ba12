"""The run directory's write side and the stage registry, directly: atomic commit, the in = out + rejected
check, skip-if-current, and the one call that reads a stage's upstream manifests."""

from __future__ import annotations

import json

import pytest

from pipeline.run.directory import MANIFEST, StageResult, file_identity, read_manifest, run_stage, staged_dir
from pipeline.run.stages import STAGES, fingerprints, folder_order, require_upstream, stale_inputs


def write_rows(count: int):
    def body(out_dir):
        (out_dir / "rows.txt").write_text("\n".join(str(row) for row in range(count)))
        return StageResult(rows_in=count + 1, rows_out=count, rejected={"bad": 1})
    return body


def test_a_stage_commits_its_folder_with_a_manifest_that_adds_up(tmp_path):
    manifest = run_stage(tmp_path, "ingest", {"k": 1}, {"pool": "a"}, write_rows(3))
    assert manifest["skipped"] is False
    assert (tmp_path / "ingest" / "rows.txt").read_text() == "0\n1\n2"
    on_disk = read_manifest(tmp_path / "ingest")
    assert on_disk["rows_in"] == 4 and on_disk["rows_out"] == 3 and on_disk["rejected"] == {"bad": 1}
    assert not list(tmp_path.glob(".ingest.*"))


def test_a_current_stage_is_skipped_and_a_changed_config_reruns(tmp_path):
    calls = []

    def body(out_dir):
        calls.append(out_dir)
        return write_rows(2)(out_dir)

    first = run_stage(tmp_path, "ingest", {"k": 1}, {}, body)
    again = run_stage(tmp_path, "ingest", {"k": 1}, {}, body)
    assert again["skipped"] is True and again["fingerprint"] == first["fingerprint"] and len(calls) == 1
    changed = run_stage(tmp_path, "ingest", {"k": 2}, {}, body)
    assert changed["skipped"] is False and changed["fingerprint"] != first["fingerprint"] and len(calls) == 2
    forced = run_stage(tmp_path, "ingest", {"k": 2}, {}, body, force=True)
    assert forced["skipped"] is False and len(calls) == 3


def test_rows_that_do_not_add_up_fail_and_leave_the_old_output(tmp_path):
    run_stage(tmp_path, "ingest", {"k": 1}, {}, write_rows(2))

    def lossy(out_dir):
        (out_dir / "rows.txt").write_text("x")
        return StageResult(rows_in=5, rows_out=3, rejected={"bad": 1})

    with pytest.raises(RuntimeError, match="5 rows in but 3 out \\+ 1 rejected"):
        run_stage(tmp_path, "ingest", {"k": 2}, {}, lossy)
    assert (tmp_path / "ingest" / "rows.txt").read_text() == "0\n1"
    assert read_manifest(tmp_path / "ingest")["config"] == {"k": 1}
    assert not list(tmp_path.glob(".ingest.*"))


def test_a_crash_inside_a_stage_leaves_no_folder_that_looks_complete(tmp_path):
    def crashes(out_dir):
        (out_dir / "part-0.parquet").write_text("half")
        raise KeyboardInterrupt  # what a killed driver looks like from inside

    with pytest.raises(KeyboardInterrupt):
        run_stage(tmp_path, "matches", {}, {}, crashes)
    assert not (tmp_path / "matches").exists() and not list(tmp_path.glob(".matches.tmp-*"))


def test_leftovers_of_a_killed_attempt_are_cleared_and_a_manifest_is_required(tmp_path):
    leftover = tmp_path / ".selection.tmp-dead"
    leftover.mkdir()
    (leftover / "part-0.parquet").write_text("half")
    with pytest.raises(RuntimeError, match="without a manifest"):
        with staged_dir(tmp_path, "selection") as temporary:
            (temporary / "rows").write_text("x")
    assert not leftover.exists() and not (tmp_path / "selection").exists()


def test_file_identity_changes_when_a_pool_file_changes(tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("a\n")
    before = file_identity([pool])
    pool.write_text("a\nb\n")
    assert file_identity([pool]) != before


def test_every_upstream_of_the_registry_is_a_declared_stage_and_comes_earlier():
    order = list(STAGES)
    for stage in STAGES.values():
        for upstream in stage.upstream:
            assert order.index(upstream) < order.index(stage.name), (stage.name, upstream)
    assert len(set(folder_order())) == len(STAGES)
    # the folders users' run directories already have
    assert [STAGES[name].folder for name in ("match", "count", "balance")] == ["matches", "entry_counts", "selection"]


def test_require_upstream_names_what_to_run_first(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run validate and embed first \(jobs/validate.py, jobs/embed.py\)"):
        require_upstream(tmp_path, "dedup")
    with pytest.raises(FileNotFoundError, match="run download, validate and rebalance first"):
        require_upstream(tmp_path, "shards")
    for folder in ("download", "validate"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / MANIFEST).write_text(json.dumps({"fingerprint": folder * 2}))
    with pytest.raises(FileNotFoundError, match=r"run the rebalance stage first \(jobs/rebalance.py\)"):
        require_upstream(tmp_path, "shards")
    with pytest.raises(FileNotFoundError, match=r"run the embed stage first \(jobs/embed.py\)"):
        require_upstream(tmp_path, "dedup")
    manifests = require_upstream(tmp_path, "validate")
    assert fingerprints(manifests) == {"download": "downloaddownload"}


def test_stale_inputs_name_what_changed_after_a_stage_ran(tmp_path):
    def stage(folder: str, fingerprint: str, inputs: dict | None = None) -> None:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / MANIFEST).write_text(json.dumps({"fingerprint": fingerprint, "inputs": inputs or {}}))

    for folder in ("selection", "validate", "entry_counts"):
        stage(folder, folder)
    stage("rebalance", "r", {"selection": "selection", "validate": "validate"})
    assert stale_inputs(tmp_path, "rebalance") == []
    stage("dedup", "d1")  # an optional upstream that ran after rebalance
    assert stale_inputs(tmp_path, "rebalance") == ["dedup"]
    stage("rebalance", "r", {"selection": "selection", "validate": "validate", "dedup": "d1"})
    assert stale_inputs(tmp_path, "rebalance") == []
    stage("validate", "validate again")
    stage("dedup", "d2")
    assert stale_inputs(tmp_path, "rebalance") == ["dedup", "validate"]
