"""Notebooks under test train afresh: a fresh results folder per test session, read by every notebook that trains."""

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _code(path):
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_the_test_session_has_a_fresh_results_folder_outside_the_checkout():
    folder = Path(os.environ["CDP_RESULTS_DIR"])
    assert folder.is_dir() and ROOT not in folder.resolve().parents  # not notebooks/results/, which persists


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if any("run_sweep(" in c for c in _code(p))],
                         ids=lambda p: p.name)
def test_every_notebook_that_trains_takes_its_results_folder_from_the_session(path):
    parameters = [c for c in json.loads(path.read_text())["cells"]
                  if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(parameters) == 1, "one parameters cell"
    assert 'os.environ.get("CDP_RESULTS_DIR", "results")' in "".join(parameters[0]["source"])
