"""The closed-loop study, small: a long-tailed pool of real CIFAR-10 photos through the pipeline's stages
(the data job on the tests' Spark session), settings chosen on a held-out validation split, arms trained for the
same samples and evaluated zero-shot on CIFAR-10's test set."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError
from pipeline.experiments.arms import ONLINE, PIPELINE, RAW, REFERENCE, UIDS, ArmSpec, PoolFacts
from pipeline.experiments.report import paired_difference
from pipeline.experiments.study import t_grid
from tests.helpers import CIFAR_TEST_PER_CLASS, ENV, SHARED, run_job_here

pytestmark = pytest.mark.slow
ARMS = (RAW, PIPELINE, ONLINE)
BUDGET = 640  # samples each arm trains on: 20 steps of 32


def study_command(run: Path, out_root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.experiment", "--run", str(run), "--name", "small",
            "--arms", *ARMS, "--budgets", str(BUDGET), "--sweep-samples", str(BUDGET), "--t-values", "2",
            "--seeds", "2",
            "--other-seeds", "1", "--reference-seeds", "1", "--batch-size", "32", "--warmup", "5", "--workers", "1",
            "--out-root", str(out_root), *extra]


def run_ok(command: list[str]) -> str:
    finished = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished.stdout


@pytest.fixture(scope="module")
def study(tmp_path_factory, cifar_test_subset, spark) -> tuple[Path, Path, str, str]:
    """The data job, the sweep alone with no test set anywhere, then the study, as `make experiment` runs them."""
    run = tmp_path_factory.mktemp("study") / "run"
    results = run.parent / "results"
    status, output = run_job_here("experiment_data", "--out", str(run), "--head-rows", "300", "--imbalance", "24",
                                  "--validation-per-class", "40", "--reference-per-class", "60", "--eps", "0.002",
                                  "--photos", str(SHARED / "images" / "cifar10_train.tar.gz"))
    assert status == 0, output
    sweep_stdout = run_ok(study_command(run, results, "--sweep-only", "--images", str(run / "no-test-set.tar")))
    stdout = run_ok(study_command(run, results, "--images", str(cifar_test_subset)))
    return run, results / "small", sweep_stdout, stdout


def photo_hashes(tar_path: Path) -> set[str]:
    with tarfile.open(tar_path) as archive:
        return {hashlib.sha256(archive.extractfile(member).read()).hexdigest() for member in archive if member.isfile()}


@pytest.mark.real_data
def test_the_validation_split_is_held_out_of_the_pool(study):
    run, _, _, _ = study
    validation = photo_hashes(run / "pool" / "validation.tar")
    assert len(validation) == 400  # 40 distinct photos of each of 10 classes
    served = {hashlib.sha256(path.read_bytes()).hexdigest() for path in (run / "pool" / "images").iterdir()}
    assert not validation & served
    assert not validation & photo_hashes(SHARED / "images" / "cifar10_test.tar.gz")


@pytest.mark.real_data
def test_the_sweep_reads_only_the_validation_split_and_chooses_its_best(study):
    run, out, sweep_stdout, _ = study
    sweep = json.loads((out / "sweep.json").read_text())["sweep"]  # written with no test set on disk
    assert [entry["split"] for entry in sweep["runs"]] == ["validation"] * 3  # 2 t values, then eps none
    assert {entry["images"] for entry in sweep["runs"]} == {str(run / "pool" / "validation.tar")}
    assert all(entry["test_images"] == 400 for entry in sweep["runs"])
    first = [entry for entry in sweep["runs"] if entry["eps"] == 0.002]
    assert sorted(entry["t"] for entry in first) == sweep["t_values"]
    assert sweep["chosen"]["t"] == max(first, key=lambda entry: (entry["top1"], entry["t"]))["t"]
    assert f"t = {sweep['chosen']['t']:g}" in sweep_stdout
    results = json.loads((out / "results.json").read_text())
    assert results["chosen"] == sweep["chosen"]  # the full study chose the same, from the same validation runs
    assert all(entry["split"] == "test" for entry in results["runs"])


@pytest.mark.real_data
def test_every_arm_is_listed_by_uid_and_composed_as_its_ablation(study):
    run, out, _, _ = study
    results = json.loads((out / "results.json").read_text())
    rows = results["class_rows"]
    uids = {arm: pq.read_table(run / arm / UIDS).to_pydict() for arm in ARMS}
    assert len(uids[RAW]["uid"]) == sum(rows.values())  # every url of the pool downloaded and kept
    # Whatever t the sweep chose: balancing at 4t keeps what balancing at t keeps (the same draws), dedup drops
    assert set(uids[PIPELINE]["uid"]) <= set(uids[ONLINE]["uid"]) < set(uids[RAW]["uid"])
    assert results["composition"][PIPELINE]["copies"] < results["composition"][RAW]["copies"] / 4
    online = np.array(uids[ONLINE]["keep_prob"])
    assert 0 < online.min() and online.max() <= 1
    facts = PoolFacts.read(run)
    assert len(set(facts.rows.column("uid").to_pylist())) == facts.rows.num_rows  # the pool's own uids
    # At the low end of the t grid (caps half the classes) the head is capped and the tail kept but for dedup
    t = min(results["sweep"]["t_values"])
    capped, _ = facts.selection(ArmSpec(dedup=True, eps=0.002, t=t))
    deduped, _ = facts.selection(ArmSpec(dedup=True, eps=0.002))
    labels = np.array(facts.rows.column("label").to_pylist())
    top, last = max(rows, key=rows.get), min(rows, key=rows.get)
    assert (capped & (labels == top)).sum() < min(rows[top] / 2, (deduped & (labels == top)).sum())
    assert (capped & (labels == last)).sum() >= 0.7 * (deduped & (labels == last)).sum()
    online_at_t, keep_prob = facts.selection(ArmSpec(dedup=True, eps=0.002, t=t, online=True))
    assert set(np.flatnonzero(capped)) < set(np.flatnonzero(online_at_t)) and (keep_prob[online_at_t] < 1).any()


@pytest.mark.real_data
def test_arms_train_on_equal_samples_and_the_table_pairs_seeds(study):
    _, out, _, stdout = study
    results = json.loads((out / "results.json").read_text())
    counts = {arm: sum(run["arm"] == arm for run in results["runs"]) for arm in (*ARMS, REFERENCE)}
    assert counts == {RAW: 2, PIPELINE: 2, ONLINE: 1, REFERENCE: 1}
    for run in results["runs"]:
        assert run["samples_seen"] == BUDGET and run["test_images"] == 10 * CIFAR_TEST_PER_CLASS
        assert 0 <= run["top1"] <= 1
    table = (out / "table.md").read_text()
    assert table in stdout and "(n=2)" in table and "| reference |" in table
    for figure in ("per_class.png", "budgets.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.real_data
def test_a_rerun_reuses_finished_runs_and_retraining_gives_the_same_numbers(study, cifar_test_subset):
    run, out, _, _ = study
    before = json.loads((out / "results.json").read_text())
    retrained = next(entry for entry in before["runs"] if entry["arm"] == PIPELINE and entry["seed"] == 1)
    shutil.rmtree(run / "train" / retrained["run"])
    run_ok(study_command(run, out.parent, "--images", str(cifar_test_subset)))
    after = json.loads((out / "results.json").read_text())
    again = next(entry for entry in after["runs"] if entry["run"] == retrained["run"])
    assert (again["top1"], again["per_class"]) == (retrained["top1"], retrained["per_class"])
    kept = [entry for entry in before["runs"] if entry["run"] != retrained["run"]]
    assert [entry for entry in after["runs"] if entry["run"] != retrained["run"]] == kept  # not trained again


def test_the_t_grid_runs_from_half_the_classes_capped_to_the_head_alone():
    rows = {f"class{index}": count for index, count in enumerate((5000, 2777, 1543, 857, 476, 264, 147, 82, 45, 25))}
    grid = t_grid(rows, 5)
    assert len(grid) == 5 and grid == sorted(grid)
    assert sum(count > grid[0] for count in rows.values()) == 5
    assert sum(count > grid[-1] for count in rows.values()) == 1


def test_paired_differences_use_the_seeds_both_arms_have():
    runs = [{"arm": arm, "seed": seed, "samples": 100, "top1": value} for arm, seed, value in
            [(RAW, 0, 0.30), (RAW, 1, 0.32), (RAW, 2, 0.31), (PIPELINE, 0, 0.35), (PIPELINE, 1, 0.36),
             (PIPELINE, 3, 0.90)]]
    mean, half, pairs = paired_difference(runs, PIPELINE, 100, "top1")
    assert pairs == 2 and mean == pytest.approx(0.045)
    assert half == pytest.approx(12.706 * 0.005, rel=1e-3)  # t(0.975, 1 df) x sd 0.00707 / sqrt(2)
    assert paired_difference(runs[:4], PIPELINE, 100, "top1") is None


def test_an_unprepared_run_is_a_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="jobs/experiment_data.py"):
        PoolFacts.read(tmp_path)
    result = subprocess.run([sys.executable, "-m", "pipeline.experiment", "--run", str(tmp_path), "--name", "x",
                             "--sweep-only"], env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "prepare the study's data first" in result.stderr
    assert "Traceback" not in result.stderr
