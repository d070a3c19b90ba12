"""The jobs as users run them: spark-submit, a killed run, a standalone cluster on 127.0.0.1, user errors."""

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.run.directory import HOLD_PIPE, HOLD_STAGE, MANIFEST
from tests.helpers import ENV, LAION, REPO, SUBMIT, open_when_peer_opens, run_job_here, submit

pytestmark = pytest.mark.slow


def curate_args(out, *extra):
    return [str(REPO / "jobs" / "curate_text.py"), "--pool", str(LAION), "--out", str(out), "--t", "5", *extra]


def selection(run_dir):
    return sorted(pq.read_table(Path(run_dir) / "selection", columns=["uid"]).column("uid").to_pylist())


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "run"
    result = submit(*curate_args(out))
    assert "selection" in result.stdout
    return out


@pytest.mark.real_data
def test_killed_run_leaves_nothing_complete_and_rerun_gives_the_same_result(tmp_path, local_run, spark):
    out = tmp_path / "run"
    hold = tmp_path / "hold"
    os.mkfifo(hold)  # the match stage waits on it once its temporary folder exists (run/directory.py's failpoint)
    job = subprocess.Popen(SUBMIT + curate_args(out), env={**ENV, HOLD_STAGE: "matches", HOLD_PIPE: str(hold)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    with open_when_peer_opens(hold, "wb", job):
        assert list(out.glob(".matches.tmp-*")), "the match stage has not started"
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert (out / "ingest" / MANIFEST).exists()
    assert not (out / "matches" / MANIFEST).exists() and not (out / "selection").exists()
    status, rerun = run_job_here("curate_text", *curate_args(out)[1:])  # the rerun needs no new JVM
    assert status == 0, rerun
    assert "skipped (current)" in next(line for line in rerun.splitlines() if line.strip().startswith("ingest"))
    assert selection(out) == selection(local_run)
    assert not list(out.glob(".*.tmp-*"))


def test_user_errors_exit_2_with_one_line(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    result = submit(str(REPO / "jobs" / "curate_text.py"), "--pool", str(tmp_path / "bad.parquet"),
                    "--out", str(tmp_path / "run"), check=False)
    output = result.stdout + result.stderr  # spark-submit merges the driver's stderr into its stdout
    assert result.returncode == 2
    assert "error: " in output and "bad.parquet: not a readable Parquet file" in output
    assert "Traceback" not in output


@pytest.mark.real_data
def test_cluster_mode_gives_the_local_selection(tmp_path, local_run, standalone_cluster):
    master, ui = standalone_cluster
    out = tmp_path / "run"
    submit("--master", master, "--executor-memory", "1g", *curate_args(out))
    assert selection(out) == selection(local_run)
    with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as reply:
        completed = json.load(reply)["completedapps"]
    assert any(app["name"] == "metacurate-curate-text" for app in completed)


@pytest.mark.real_data
def test_stage_jobs_run_alone_on_a_run_directory(tmp_path, local_run, spark):
    out = tmp_path / "run"
    submit(str(REPO / "jobs" / "ingest.py"), "--out", str(out), "--pool", str(LAION))
    for job, extra in (("match", []), ("count", []), ("balance", ["--target-size", "3000", "--seed", "1"])):
        status, output = run_job_here(job, "--out", str(out), *extra)  # the same scripts, on this process's Spark
        assert status == 0, output
    local = {stage: json.loads((local_run / stage / MANIFEST).read_text()) for stage in ("ingest", "matches")}
    for stage, manifest in local.items():
        assert json.loads((out / stage / MANIFEST).read_text())["fingerprint"] == manifest["fingerprint"]
    balance = json.loads((out / "selection" / MANIFEST).read_text())
    assert balance["config"]["target_size"] == 3000 and abs(balance["rows_out"] - 3000) <= 3 * 3000 ** 0.5


@pytest.mark.parametrize("job", sorted(path.stem for path in (REPO / "jobs").glob("*.py")))
def test_every_job_prints_its_help(job):
    status, output = run_job_here(job, "--help")
    assert status == 0 and output.startswith("usage: "), output[-500:]
