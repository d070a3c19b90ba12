"""The closed loop, small: a long-tailed pool of real CIFAR-10 photos, curated by the pipeline (spark-submit) and
taken raw, a tiny CLIP trained on each arm for the same samples, both evaluated zero-shot on CIFAR-10's test set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import UserInputError
from pipeline.experiments.study import ARMS, PreparedRun
from tests.helpers import ENV, REPO, SHARED, submit

T = 120

pytestmark = pytest.mark.slow


def experiment_command(run: Path, out_root: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.experiment", "--run", str(run), "--name", "small", "--seeds", "0",
            "--samples", "9600", "--batch-size", "32", "--warmup", "20", "--workers", "1",
            "--out-root", str(out_root), "--images", str(SHARED / "images" / "cifar10_test.tar.gz")]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> tuple[Path, Path, str]:
    """The data job and then the experiment's command, as `make experiment` runs them."""
    run = tmp_path_factory.mktemp("experiment") / "run"
    results = run.parent / "results"
    submit(str(REPO / "jobs" / "experiment_data.py"), "--out", str(run), "--head-rows", "600", "--imbalance", "24",
           "--t", str(T), "--photos", str(SHARED / "images" / "cifar10_train.tar.gz"))
    finished = subprocess.run(experiment_command(run, results), env=ENV, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return run, results / "small", finished.stdout


@pytest.mark.real_data
def test_curation_caps_the_head_keeps_the_tail_and_drops_copies(experiment):
    run, out, _ = experiment
    results = json.loads((out / "results.json").read_text())
    rows = results["class_rows"]
    assert max(rows.values()) == 600 and max(rows.values()) / min(rows.values()) == 24
    raw, curated = results["composition"]["raw"], results["composition"]["curated"]
    assert raw["samples"] == sum(rows.values())  # every url of the pool downloaded
    assert raw["class_samples"] == rows
    assert set(results["head_classes"]) == {label for label, count in rows.items() if count > T}
    for label in results["head_classes"]:
        assert curated["class_samples"][label] < rows[label], label
    top = max(rows, key=rows.get)
    assert curated["class_samples"][top] < rows[top] / 2
    kept = curated["class_samples"].values()
    assert max(kept) / min(kept) < 24 / 2  # the pool's 24x imbalance at least halved
    for label in results["tail_classes"]:  # all kept but no-class captions and duplicates
        assert curated["class_samples"][label] >= rows[label] * 0.7, label
    assert curated["copies"] < raw["copies"] / 4


@pytest.mark.real_data
def test_both_arms_learn_on_the_same_samples_and_beat_chance(experiment):
    _, out, stdout = experiment
    results = json.loads((out / "results.json").read_text())
    for arm in ARMS:
        [result] = results["arms"][arm]
        assert result["seed"] == 0 and result["samples_seen"] == 9600 and result["test_images"] == 10_000
        assert result["final_loss"] < result["first_loss"] - 0.15, result
        assert result["top1"] > 0.15, result  # ten classes: chance is 0.10
        assert min(result["head"], result["tail"]) >= 0 and result["train_seconds"] > 0
    table = (out / "table.md").read_text()
    assert table in stdout and all(f"| {arm} |" in table for arm in ARMS)
    assert (out / "per_class.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.real_data
def test_a_rerun_reuses_the_finished_training(experiment):
    run, out, _ = experiment
    before = json.loads((out / "results.json").read_text())
    subprocess.run(experiment_command(run, out.parent), env=ENV, capture_output=True, text=True, timeout=600, check=True)
    after = json.loads((out / "results.json").read_text())
    assert after["arms"] == before["arms"]  # same training seconds: nothing was trained again


def test_an_unprepared_run_is_a_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="jobs/experiment_data.py"):
        PreparedRun.read(tmp_path)
    result = subprocess.run([sys.executable, "-m", "pipeline.experiment", "--run", str(tmp_path), "--name", "x"],
                            env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "prepare the arms first" in result.stderr
    assert "Traceback" not in result.stderr
