"""Notebooks under test train afresh: a fresh results folder per test session, read by every notebook that trains."""

import importlib.util
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


def load_root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_on_two_workers_each_notebook_stays_whole_and_04_06_09_run_together_in_order():
    root_conftest = load_root_conftest()
    group = root_conftest.worker_group
    ids = [f"notebooks/{path.name}::Cell {cell}" for path in NOTEBOOKS for cell in (0, 7)]
    assert all(group(ids[i]) == group(ids[i + 1]) for i in range(0, len(ids), 2))  # one kernel per notebook
    notebook_04 = next(path.name for path in NOTEBOOKS if path.name.startswith("04_"))
    with_04 = [path.name[:3] for path in NOTEBOOKS
               if group(f"notebooks/{path.name}::Cell 0") == group(f"notebooks/{notebook_04}::Cell 0")]
    assert with_04 == ["04_", "06_", "09_"]  # 06 and 09 read 04's runs: one worker, in collection (name) order
    # a test file stays on one worker, so its module fixtures (the local Ray instance) are made once
    assert group("tests/test_ways_in.py::test_a") == group("tests/test_ways_in.py::test_b") != group("tests/test_store.py::t")


def test_the_longest_groups_are_handed_out_first_and_each_names_a_real_group():
    root_conftest = load_root_conftest()
    # a renamed file would silently fall back to the default order: every name must be a group that exists
    groups = {root_conftest.worker_group(f"{path.relative_to(ROOT)}::x")
              for path in [*NOTEBOOKS, *sorted((ROOT / "tests").glob("test_*.py"))]}
    assert set(root_conftest.LONGEST_FIRST) <= groups
    queue = ["tests/test_store.py", "notebooks/00_index.ipynb", *reversed(root_conftest.LONGEST_FIRST)]
    ordered = root_conftest.longest_first(queue)
    assert ordered[:len(root_conftest.LONGEST_FIRST)] == list(root_conftest.LONGEST_FIRST)
    assert ordered[0] == root_conftest.worker_group("notebooks/04_training_pruned_models.ipynb::Cell 0")
    assert ordered[-2:] == ["tests/test_store.py", "notebooks/00_index.ipynb"]  # the rest keep their order
