"""The exploration notebooks run top to bottom on a small run (nbclient, a real kernel), and are saved clean."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from pipeline.run.stages import TEXT_STAGES
from tests.helpers import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

TEXT_FOLDERS = [stage.folder for stage in TEXT_STAGES]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(demo_run, demo_training, tmp_path_factory) -> tuple[Path, Path]:
    """The image demo with a trained model attached (RUN/train), and the same run's text stages alone."""
    folder = tmp_path_factory.mktemp("notebook-runs")
    images = folder / "images"
    shutil.copytree(demo_run[0], images)
    shutil.copytree(demo_training, images / "train")
    text = folder / "text"
    for stage in TEXT_FOLDERS:
        shutil.copytree(demo_run[0] / stage, text / stage)
    return images, text


def test_the_four_notebooks_are_saved_without_outputs():
    assert [path.name for path in NOTEBOOKS] == ["01_explore_pool.ipynb", "02_tune_t_and_eps.ipynb",
                                                 "03_browse_samples.ipynb", "04_compare_runs.ipynb"]
    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        code = [cell for cell in cells if cell.cell_type == "code"]
        assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code), path.name


def outputs(notebook) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def execute(path: Path, run: Path, run_b: Path, monkeypatch, folder: Path) -> list[dict]:
    """The notebook's outputs after a real kernel ran every cell (nbclient raises on any cell's error)."""
    monkeypatch.setenv("METACURATE_RUN", str(run))
    monkeypatch.setenv("METACURATE_RUN_B", str(run_b))
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return outputs(notebook)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, runs, monkeypatch, tmp_path):
    images, text = runs
    shown = execute(path, images, text, monkeypatch, tmp_path)
    assert not [output for output in shown if output.output_type == "error"]
    assert str(images) in "".join(output.get("text", "") for output in shown)  # opened the run it was given
    figures = [output for output in shown if "image/png" in output.get("data", {})]
    pages = "".join(output.get("data", {}).get("text/html", "") for output in shown)
    if path.name.startswith(("01", "02", "04")):
        assert figures, "no figure drawn"
    if path.name.startswith("03"):
        assert pages.count("data:image/png;base64") >= 24  # thumbnails of the random draw at least
    if path.name.startswith("02"):
        assert "max_distance" in pages and "eps" in pages  # both dedup sweeps ran on this run's images
        assert "clip_score_min" in pages and "density_prune" in pages  # and the score filters' sweeps


def test_notebooks_run_on_a_run_without_images(runs, monkeypatch, tmp_path):
    """A text-only run (make demo): the image cells say there is nothing yet instead of failing."""
    _, text = runs
    for path in NOTEBOOKS:
        shown = execute(path, text, text, monkeypatch, tmp_path)
        printed = "".join(output.get("text", "") for output in shown)
        assert str(text) in printed
        if path.name.startswith("02"):
            assert "no validate stage yet" in printed and "no images downloaded yet" in printed
