"""conf/gpu_discovery.sh, the script Spark runs to find an executor's GPUs, prints what Spark parses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from pipeline import REPO

SCRIPT = REPO / "conf" / "gpu_discovery.sh"


@pytest.fixture
def path_without_nvidia_smi(tmp_path):
    """A PATH with the script's tools and nothing else (so no nvidia-smi unless a test puts one there)."""
    for tool in ("bash", "tr", "sed", "awk", "paste"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    return tmp_path


def discovered(path, **env: str) -> dict:
    clean = {key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"}
    result = subprocess.run(["bash", str(SCRIPT)], env={**clean, "PATH": str(path), **env}, capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)


def test_the_gpus_nvidia_smi_lists_are_offered(path_without_nvidia_smi):
    smi = path_without_nvidia_smi / "nvidia-smi"
    smi.write_text("#!/bin/bash\nprintf '0\\n1\\n'\n")
    smi.chmod(0o755)
    assert discovered(path_without_nvidia_smi) == {"name": "gpu", "addresses": ["0", "1"]}


def test_visible_devices_are_numbered_as_cuda_numbers_them(path_without_nvidia_smi):
    found = discovered(path_without_nvidia_smi, CUDA_VISIBLE_DEVICES="3,5")
    assert found == {"name": "gpu", "addresses": ["0", "1"]}


def test_a_machine_without_gpus_offers_none(path_without_nvidia_smi):
    assert discovered(path_without_nvidia_smi) == {"name": "gpu", "addresses": []}
