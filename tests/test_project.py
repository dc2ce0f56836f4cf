"""The promises of the repository itself: the README's commands, CI's profile, notebook hygiene."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

import cdp_tutorial as cdp
from cdp_tutorial.notebook import COLAB_STACK, REPOSITORY, badges, colab_install_cell, install_requirement

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def readme_commands():
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_gives_exactly_two_commands_and_ci_runs_the_second():
    setup_and_start, setup_and_test = readme_commands()
    assert "jupyter lab notebooks/00_index.ipynb" in setup_and_start
    assert "pytest" in setup_and_test and "CDP_PROFILE=quick" in setup_and_test
    assert setup_and_test in (ROOT / ".ci" / "run").read_text()


def test_ci_runs_the_quick_profile():
    """CI selects the quick profile through CDP_PROFILE; under CI it must really be active."""
    if os.environ.get("CI"):
        assert os.environ.get("CDP_PROFILE") == "quick"
    assert cdp.get_profile().name == os.environ.get("CDP_PROFILE", "quick")


def test_profile_selection(monkeypatch):
    monkeypatch.setenv("CDP_PROFILE", "paper")
    assert cdp.get_profile().epochs == 150 and cdp.get_profile("QUICK").name == "quick"
    monkeypatch.setenv("CDP_PROFILE", "huge")
    with pytest.raises(ValueError, match=r"unknown profile 'huge' \(from \$CDP_PROFILE\)"):
        cdp.get_profile()
    monkeypatch.delenv("CDP_PROFILE")
    assert cdp.get_profile().name == "quick"


def test_repository_address_lives_in_one_place():
    readme = (ROOT / "README.md").read_text()
    assert f"github/{REPOSITORY}/blob/main/notebooks/00_index.ipynb" in readme
    assert f"mybinder.org/v2/gh/{REPOSITORY}/" in readme
    assert f"github.com/{REPOSITORY}" in (ROOT / "pyproject.toml").read_text()
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_notebooks.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_colab_cell_installs_the_package_alone():
    """Colab has its own front end: the cell adds this package from GitHub, no extras, no JupyterLab."""
    cell = colab_install_cell()
    requirement = Requirement(install_requirement())
    assert requirement.name == "cdp-tutorial" and not requirement.extras
    assert requirement.url == f"git+https://github.com/{REPOSITORY}@main"
    assert 'if "google.colab" in sys.modules:' in cell and f'%pip install -q "{install_requirement()}"' in cell
    assert "jupyter" not in cell.lower() and "[" not in cell


def test_lower_bounds_admit_colabs_preinstalled_stack():
    """Installing the package on Colab upgrades nothing Colab has (and may have imported already)."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert COLAB_STACK["python"] in SpecifierSet(project["requires-python"])
    colab = {canonicalize_name(name): version for name, version in COLAB_STACK.items()}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in colab, (f"new dependency {requirement.name}: add Colab's version to COLAB_STACK in "
                               "cdp_tutorial/notebook.py (None if Colab lacks it)")
        if colab[name] is not None:
            assert requirement.specifier.contains(colab[name], prereleases=True), (
                f"{line!r} excludes Colab's {requirement.name} {colab[name]}: the install cell would "
                "replace it and Colab would ask for a restart; lower the bound")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_in_tutorial_form(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    first = "".join(cells[0]["source"])
    assert first.startswith(f"# {path.name[:2]} ·") and badges(path.name) in first
    code = [c for c in cells if c["cell_type"] == "code"]
    sources = ["".join(c["source"]) for c in code]
    assert colab_install_cell() in sources
    parameters = [s for c, s in zip(code, sources) if "parameters" in c["metadata"].get("tags", [])]
    assert len(parameters) == 1 and 'os.environ.get("CDP_PROFILE", "quick")' in parameters[0]
    assert any(s.startswith("# NBVAL_CHECK_OUTPUT") for s in sources)
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert outputs, "committed without outputs"
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert path.stat().st_size < 1_000_000
