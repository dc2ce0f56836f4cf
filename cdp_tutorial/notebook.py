"""Notebook plumbing (not the lesson): links, the Setup cell, and the environment check.

**The repository's address is one setting**: ``Repository`` under ``[project.urls]`` in
``pyproject.toml`` (an installed package carries it in its metadata). :data:`REPOSITORY` is read
from there, and everything that points at the published repository is generated from it by
``python scripts/sync_notebooks.py``: the Colab/Binder badges of every notebook and of the README,
the guarded Colab install cell, and the absolute twin of every relative link in a notebook
(:func:`absolute_link`), which Colab needs because it opens one notebook, not the repository.
Whoever publishes the repository elsewhere changes that one line and runs the script; a test
checks that nothing was left behind.

Colab has its own front end and a preinstalled scientific stack, so its install cell adds only
what Colab lacks: this package, without extras (no JupyterLab). :data:`COLAB_STACK` records the
Colab versions the cell was written against; a test keeps the package's lower bounds at or below
them, so that installing the package upgrades nothing Colab already imported (which would ask the
user to restart the runtime). An upper bound (Keras') can still make pip replace a preinstalled
version: the cell then says whether the session must be restarted.
"""

from __future__ import annotations

import importlib.metadata
import platform
import posixpath
import re
import sys
from pathlib import Path


def repository_url() -> str:
    """The published repository's address: ``Repository`` of ``[project.urls]``.

    Read from ``pyproject.toml`` in a checkout (so an edit counts at once), else from the installed
    package's metadata (``Project-URL: Repository, ...``), as after ``pip install`` on Colab.

    Returns
    -------
    str
        ``https://github.com/<owner>/<name>``.

    Raises
    ------
    RuntimeError
        If neither place names the repository.

    Examples
    --------
    >>> repository_url().startswith("https://github.com/")
    True
    """
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8") if pyproject.is_file() else ""
    if re.search(r'^name\s*=\s*"cdp-tutorial"', text, re.M):  # a checkout of this project
        urls = re.search(r"^\[project\.urls\]\s*\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
        found = urls and re.search(r'^Repository\s*=\s*"([^"]+)"', urls.group(1), re.M)
        if found:
            return found.group(1)
        raise RuntimeError(f"{pyproject} has no Repository = \"https://github.com/<owner>/<name>\" "
                           "under [project.urls]: the notebooks' links are built from it")
    try:
        entries = importlib.metadata.metadata("cdp-tutorial").get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        entries = []
    for entry in entries:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "repository":
            return url.strip()
    raise RuntimeError("the installed cdp-tutorial names no Repository URL in its metadata; "
                       "reinstall it from a checkout whose pyproject.toml has one under [project.urls]")


def _owner_and_name(url: str) -> str:
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", url)
    if not match:
        raise RuntimeError(f"Repository must be https://github.com/<owner>/<name> (Colab and Binder open "
                           f"GitHub repositories), got {url!r}")
    return match.group(1)


#: GitHub ``owner/name`` of this project (from :func:`repository_url`), and the branch links point at.
REPOSITORY = _owner_and_name(repository_url())
BRANCH = "main"


#: The Colab runtime the install cell was written against: googlecolab/backend-info,
#: ``pip-freeze.txt`` and ``os-info.txt`` at commit a7240792 (2026-08-19, "Upgrade to Python 3.13").
#: Colab has no JupyterLab (its front end is its own; ``notebook`` 6.5.7 serves the kernel).
#: ``None``: Colab lacks the package, so the install cell adds it.
COLAB_STACK: dict[str, str | None] = {
    "python": "3.13.15",
    "tensorflow": "2.20.0",
    "keras": "3.13.2",
    "numpy": "2.1.3",
    "pandas": "2.2.3",
    "matplotlib": "3.10.0",
    "seaborn": "0.13.2",
    "ipywidgets": "7.7.1",
    "tqdm": "4.67.3",
    "scikit-learn": "1.6.1",
    "scipy": "1.16.3",
    "pillow": "11.3.0",
    "psutil": "5.9.5",
    "ai-edge-litert": None,  # not on Colab: the install cell would add it
}


def github_url() -> str:
    """The repository's GitHub page."""
    return f"https://github.com/{REPOSITORY}"


def github_file_url(path: str) -> str:
    """GitHub address of a file of the repository, e.g. ``github_file_url("docs/instructors.md")``."""
    return f"{github_url()}/blob/{BRANCH}/{path}"


def colab_url(notebook: str) -> str:
    """'Open in Colab' address of ``notebooks/<notebook>``."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/notebooks/{notebook}"


def binder_url(notebook: str | None = None) -> str:
    """mybinder.org address that opens JupyterLab on ``notebooks/<notebook>`` (default: the index)."""
    return (f"https://mybinder.org/v2/gh/{REPOSITORY}/{BRANCH}"
            f"?urlpath=lab/tree/notebooks/{notebook or '00_index.ipynb'}")


def badges(notebook: str) -> str:
    """The Markdown badge line under each notebook's title."""
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(notebook)}) "
            f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(notebook)})")


def absolute_link(target: str) -> tuple[str, str]:
    """The absolute twin of a relative link in a notebook: a notebook opens in Colab, any other file on GitHub.

    JupyterLab and Binder follow relative links (``../docs/instructors.md``, ``04_x.ipynb``) inside the
    repository; Colab opens a single notebook and cannot, so each relative link gets an absolute twin.

    Parameters
    ----------
    target : str
        The link target, relative to ``notebooks/`` (an ``#anchor`` may follow).

    Returns
    -------
    (str, str)
        The twin's label (``"in Colab"`` or ``"on GitHub"``) and its address.

    Raises
    ------
    ValueError
        If the target leaves the repository.

    Examples
    --------
    >>> absolute_link("../docs/instructors.md")[1].endswith("/blob/main/docs/instructors.md")
    True
    >>> absolute_link("04_training_pruned_models.ipynb")[0]
    'in Colab'
    """
    path, hash_, anchor = target.partition("#")
    resolved = posixpath.normpath(posixpath.join("notebooks", path))
    if resolved.startswith("../") or resolved == "..":
        raise ValueError(f"link target {target!r} (relative to notebooks/) leaves the repository")
    fragment = hash_ + anchor
    if posixpath.dirname(resolved) == "notebooks" and resolved.endswith(".ipynb"):
        return "in Colab", colab_url(posixpath.basename(resolved)) + fragment
    return "on GitHub", github_file_url(resolved) + fragment


def install_requirement() -> str:
    """What Colab's install cell passes to pip: the package alone, from GitHub.

    Colab opens only the notebook, not the repository, hence the ``git+`` address; no extras,
    because Colab brings its own front end (the ``tutorial`` extra is JupyterLab, for local use).
    The wheel pip builds from it carries the repository's ``data/`` folder (fixture, reference
    tables, committed results), so the notebooks need no further download.

    Examples
    --------
    >>> install_requirement() == f"cdp-tutorial @ git+https://github.com/{REPOSITORY}@{BRANCH}"
    True
    """
    return f"cdp-tutorial @ git+{github_url()}@{BRANCH}"


#: Packages Colab preinstalls that installing this package could replace (Keras has an upper bound
#: in ``pyproject.toml``); import name = distribution name for each. A module already imported keeps
#: its old version in memory until the session restarts, so the install cell checks these.
RESTART_WATCH = ("keras", "tensorflow", "numpy", "pandas", "matplotlib")


def colab_install_cell() -> str:
    """Source of the guarded install cell: on Colab, install what Colab lacks; elsewhere, nothing.

    IPython's ``%pip`` always ends with its own line, "Note: you may need to restart the kernel to
    use updated packages.", whether or not anything changed. The cell adds a line of its own only
    when a restart is really needed: when pip replaced a package this session had already imported
    (a Keras newer than the package's upper bound, say), it names it and asks for a restart.
    """
    watched = ", ".join(f'"{name}"' for name in RESTART_WATCH)
    return (
        "# Colab opens only this notebook and has its own front end and scientific stack: install just the\n"
        "# helper package there (elsewhere this cell does nothing). %pip always ends with \"Note: you may need\n"
        "# to restart the kernel\"; a restart is needed only if this cell then says that pip replaced a package\n"
        "# the session had already imported (Keras has an upper bound): Runtime > Restart session, run again.\n"
        "import sys\n"
        "if \"google.colab\" in sys.modules:\n"
        "    from importlib.metadata import version\n"
        "    imported = {name: getattr(sys.modules[name], \"__version__\", None)\n"
        f"                for name in ({watched}) if name in sys.modules}}\n"
        f"    %pip install -q \"{install_requirement()}\"\n"
        "    moved = [f\"{name} {old} -> {version(name)}\" for name, old in imported.items() if version(name) != old]\n"
        "    if moved:\n"
        "        print(\"Restart the session (Runtime > Restart session), then run the notebook again:\",\n"
        "              \"pip replaced\", \", \".join(moved), \"after this session had imported them.\")"
    )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def setup(min_keras: str = "3.5", min_tensorflow: str = "2.16") -> None:
    """The Setup cell: check versions, set the plot style, and say if no GPU is present.

    Raises ``RuntimeError`` with a fix if Keras 2 (``tf_keras``) is active or versions are too old.
    """
    import keras
    import matplotlib.pyplot as plt
    import seaborn as sns
    import tensorflow as tf

    def at_least(version: str, minimum: str) -> bool:
        as_tuple = lambda v: tuple(int(p) for p in v.split(".")[:2] if p.isdigit())  # noqa: E731
        return as_tuple(version) >= as_tuple(minimum)

    if not at_least(keras.__version__, min_keras):
        raise RuntimeError(f"Keras {keras.__version__} found; this tutorial needs Keras >= {min_keras} "
                           "(Keras 3). Run: pip install -U 'keras>=3.5'")
    if not at_least(tf.__version__, min_tensorflow):
        raise RuntimeError(f"TensorFlow {tf.__version__} found; this tutorial needs >= {min_tensorflow}.")
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": 120, "figure.figsize": (7, 3.5)})  # legible committed figures
    print(f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}")
    if not tf.config.list_physical_devices("GPU"):
        message = "No GPU detected: the quick profile runs fine on a CPU; the standard and paper profiles need a GPU."
        if "google.colab" in sys.modules:
            message += " On Colab: Runtime > Change runtime type > GPU."
        print(message)


def requirements() -> list[str]:
    """What this package requires to run (no extras): from its metadata, else from ``pyproject.toml``.

    Examples
    --------
    >>> any(line.replace(" ", "").startswith("keras") and "<" in line for line in requirements())
    True
    """
    try:
        lines = importlib.metadata.requires("cdp-tutorial") or []
    except importlib.metadata.PackageNotFoundError:  # a checkout used without installing it
        import tomllib  # Python >= 3.11

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        lines = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return [line for line in lines if "extra ==" not in line]


def environment_report():
    """What this machine has against what the package requires: one row per requirement, and the GPUs.

    Rows: Python (``requires-python``), then every requirement of :func:`requirements` (upper
    bounds included: Keras' private graph API is tested up to the bound), with the installed
    version and whether it satisfies the requirement. A requirement whose marker excludes this
    machine (``ai-edge-litert`` on Windows) says so. TensorFlow also counts as installed when only
    ``tensorflow-cpu`` is.

    Returns
    -------
    pandas.DataFrame
        Indexed by component, with columns ``required``, ``installed`` and ``ok`` (True, False, or
        None for a requirement that does not apply here and for the GPU count).

    Examples
    --------
    >>> report = environment_report()
    >>> "<3.16" in report.loc["keras", "required"] and bool(report.loc["keras", "ok"])
    True
    >>> {"scikit-learn", "psutil", "tqdm", "ai-edge-litert"} <= set(report.index)
    True
    """
    import pandas as pd
    import tensorflow as tf
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    python = platform.python_version()
    try:
        requires_python = importlib.metadata.metadata("cdp-tutorial").get("Requires-Python") or ">=3.10"
    except importlib.metadata.PackageNotFoundError:
        requires_python = ">=3.10"
    rows = [("python", requires_python, python, SpecifierSet(requires_python).contains(python))]
    for line in requirements():
        requirement = Requirement(line)
        required = str(requirement.specifier) or "any"
        if requirement.marker is not None and not requirement.marker.evaluate():
            rows.append((requirement.name, f"{required} (not on this platform)", _version(requirement.name), None))
            continue
        installed = _version(requirement.name)
        if installed == "not installed" and requirement.name == "tensorflow":
            installed = _version("tensorflow-cpu")
        ok = installed != "not installed" and requirement.specifier.contains(installed, prereleases=True)
        rows.append((requirement.name, required, installed, ok))
    rows.append(("GPUs", "optional", str(len(tf.config.list_physical_devices("GPU"))), None))
    return pd.DataFrame(rows, columns=["component", "required", "installed", "ok"]).set_index("component")
