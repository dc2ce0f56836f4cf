"""The ways in besides a local clone, exercised for real: Ray Tune sweeps, Binder (repo2docker).

CI installs Ray Tune and repo2docker through the ``test`` extra, so none of these is skipped there.
Colab's install cell is checked in ``test_project.py`` with the other notebook promises.
"""

import dataclasses
import importlib
import os
import re
import shlex
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from cdp_tutorial import cli
from cdp_tutorial.experiments import RESULTS_FILE, ResultsStore, TrialsFailed, baseline_of, make_specs, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def requires_python() -> SpecifierSet:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return SpecifierSet(re.search(r'^requires-python\s*=\s*"([^"]+)"', text, re.M).group(1))


def from_test_extra(module: str):
    """Import a module the test extra installs: missing under CI is an error, elsewhere a skip."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f'{module} comes with the test extra: pip install -e ".[test]"')


def test_the_test_extra_brings_ray_tune_and_repo2docker():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    test_extra = project["optional-dependencies"]["test"]
    assert any(line.replace(" ", "").startswith("ray[tune]") for line in test_extra)
    assert any(line.startswith("jupyter-repo2docker") for line in test_extra)


# --------------------------------------------------------------------------------------------
# Ray Tune: a real local Ray instance, real trials on the fixture
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    """A Ray instance of this test's own (``address="local"`` never joins another user's cluster)."""
    ray = from_test_extra("ray")
    from_test_extra("ray.tune")
    options = dict(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray.init(**options)
    except Exception as error:  # Ray's raylet waits a fixed 15-30 s for its agents: once more if overloaded
        if "timed out during startup" not in str(error):
            raise
        ray.shutdown()
        ray.init(**options)
    yield ray
    ray.shutdown()


# One sweep serves every Ray test below: each pass of trials starts worker processes that import
# TensorFlow (most of the cost), so the sweep has two passes and three trials, no more: an l1 run
# whose baseline is implied (trained in the first pass), and an orphan l1 run whose implied baseline
# fails inside its trial (the fixture has 2,000 training images).
@pytest.fixture(scope="module")
def ray_sweep(tmp_path_factory, local_ray):
    """``(out, specs, failed)``: the sweep's folder, its specs by role, the ``TrialsFailed`` it raised."""
    out = tmp_path_factory.mktemp("ray") / "sweep"
    tiny = dict(profile="quick", baseline=False, epochs=1, train_size=64, test_size=32, width_multiplier=0.125)
    (l1,) = make_specs("alexnet", ["FA"], [0.5], [0], methods=["l1"], **tiny)
    orphan = dataclasses.replace(l1, seed=1, train_size=5000)  # its baseline cannot load its data
    with pytest.raises(TrialsFailed) as failed:
        run_sweep([l1, orphan], out, backend="ray", progress=False)
    specs = dict(l1=l1, baseline=baseline_of(l1), orphan=orphan, orphan_baseline=baseline_of(orphan))
    return out, specs, failed.value


def test_ray_sweep_names_each_failed_trial_and_why(ray_sweep):
    _, specs, failed = ray_sweep
    orphan, orphan_baseline = specs["orphan"], specs["orphan_baseline"]
    # the user learns which runs failed and why, without a progress bar
    assert set(failed.failures) == {orphan_baseline.key, orphan.key}
    assert "ValueError: train_size=5000 exceeds the 2,000 images available" in failed.failures[orphan_baseline.key]
    assert f"its baseline {orphan_baseline.key} failed" in failed.failures[orphan.key]
    assert orphan_baseline.key in str(failed) and orphan.key in str(failed)


def test_ray_trains_a_ranking_methods_baseline_first_and_the_driver_alone_records_each_run_once(ray_sweep):
    """The two-pass path: baselines the ranking runs need are trained in a first pass of trials."""
    out, specs, _ = ray_sweep
    baseline, l1 = specs["baseline"], specs["l1"]
    records = {r["key"]: r for r in ResultsStore(out).records()}
    assert sorted(records) == sorted([baseline.key, l1.key])  # once each: the implied baseline, the run pruning it
    assert all(0 <= r["test_accuracy"] <= 1 for r in records.values())
    assert records[baseline.key]["epochs_trained"] == 1
    assert records[l1.key]["stages"][0]["test_accuracy"] == records[baseline.key]["test_accuracy"]  # it pruned that one
    assert list(out.rglob(RESULTS_FILE)) == [out / RESULTS_FILE]  # no store in the trials
    assert all((out / "runs" / key).is_dir() for key in records)  # each trial's checkpoints
    assert not (out / "runs" / specs["orphan"].key).exists()  # never started
    assert sorted(p.name for p in (out / "ray").iterdir()) == ["baselines", "sweep"]


def test_a_ray_sweep_run_again_skips_what_is_finished(ray_sweep, capsys):
    out, specs, _ = ray_sweep
    finished = [specs["baseline"], specs["l1"]]
    before = (out / RESULTS_FILE).read_bytes()
    trials_before = {name: sorted(p.name for p in (out / "ray" / name).iterdir()) for name in ("baselines", "sweep")}
    frame = run_sweep(finished, out, backend="ray", progress=False)
    assert sorted(frame.key) == sorted(s.key for s in finished)
    assert "2 of 2 runs already finished" in capsys.readouterr().out  # and said so
    assert (out / RESULTS_FILE).read_bytes() == before  # no new trial, the store untouched
    assert {name: sorted(p.name for p in (out / "ray" / name).iterdir()) for name in trials_before} == trials_before


def readme_section(title: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", readme, re.S | re.M)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def test_readme_shows_a_ray_cluster_and_its_sweep_command_is_valid():
    section = readme_section("Beyond one machine")
    for needed in ("ray start --head", "--address", "RAY_ADDRESS", "--gpus-per-trial",
                   RESULTS_FILE, "runs/", "skip"):
        assert needed in section, f"'Beyond one machine' no longer mentions {needed}"
    commands = "\n".join(re.findall(r"```bash\n(.*?)```", section, re.S))
    sweeps = [line.strip() for line in commands.splitlines() if "cdp-tutorial sweep" in line]
    assert sweeps and all("--backend ray" in line for line in sweeps)
    for line in sweeps:  # the documented options exist (parsing runs nothing)
        words = shlex.split(line)
        args = cli.build_parser().parse_args(words[words.index("cdp-tutorial") + 1:])
        assert args.backend == "ray"


# --------------------------------------------------------------------------------------------
# Binder: repo2docker itself reads binder/ and writes the Dockerfile it would build
# --------------------------------------------------------------------------------------------
def test_repo2docker_accepts_binder_folder():
    from_test_extra("repo2docker")
    # --no-build: generate the build script only (no Docker engine needed); --debug prints it
    result = subprocess.run([sys.executable, "-m", "repo2docker", "--no-build", "--no-run", "--debug",
                             str(ROOT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    dockerfile = result.stdout
    assert "FROM " in dockerfile
    # binder/ wins over the top-level environment.yml (that one is for conda users)
    assert "src/binder/environment.yml" in dockerfile and "src/environment.yml" not in dockerfile
    assert "RUN ./binder/postBuild" in dockerfile
    python = re.search(r"Building conda environment for python=(\d+\.\d+)", result.stderr).group(1)
    assert f"{python}.0" in requires_python(), f"Binder's Python {python} is not in requires-python"


def test_binder_installs_the_package_on_repo2dockers_own_jupyterlab():
    from_test_extra("repo2docker")
    environment = (ROOT / "binder" / "environment.yml").read_text(encoding="utf-8")
    python = re.search(r"python=(\d+\.\d+)", environment).group(1)
    # the environment repo2docker starts from already serves JupyterLab for that Python ...
    lock = resources.files("repo2docker") / "buildpacks" / "conda" / f"environment.py-{python}-linux-64.lock"
    assert "/jupyterlab-4" in lock.read_text(encoding="utf-8")
    # ... so postBuild adds the package alone, and stops at the first error
    post_build = (ROOT / "binder" / "postBuild").read_text(encoding="utf-8")
    install = [line for line in post_build.splitlines() if "pip install" in line]
    assert install and install[0].rstrip().endswith("-e .")
    assert "jupyterlab" not in install[0] and "[tutorial]" not in post_build
    assert "set -euo pipefail" in post_build
