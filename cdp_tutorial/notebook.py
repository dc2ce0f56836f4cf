"""Notebook plumbing (not the lesson): links, the Setup cell, and the environment check.

The repository's address lives here and nowhere else: the Colab/Binder badges and the guarded
Colab install cell of every notebook are generated from :data:`REPOSITORY` by
``python scripts/sync_notebooks.py``, and a test checks that they agree.

Colab has its own front end and a preinstalled scientific stack, so its install cell adds only
what Colab lacks: this package, without extras (no JupyterLab). :data:`COLAB_STACK` records the
Colab versions the cell was written against; a test keeps the package's lower bounds at or below
them, so that installing the package upgrades nothing Colab already imported (which would ask the
user to restart the runtime).
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys

#: GitHub ``owner/name`` of this project, and the branch the badges point at.
REPOSITORY = "cdp-tutorial/cdp-tutorial"
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
    return f"https://github.com/{REPOSITORY}"


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


def install_requirement() -> str:
    """What Colab's install cell passes to pip: the package alone, from GitHub.

    Colab opens only the notebook, not the repository, hence the ``git+`` address; no extras,
    because Colab brings its own front end (the ``tutorial`` extra is JupyterLab, for local use).

    Examples
    --------
    >>> install_requirement()
    'cdp-tutorial @ git+https://github.com/cdp-tutorial/cdp-tutorial@main'
    """
    return f"cdp-tutorial @ git+{github_url()}@{BRANCH}"


def colab_install_cell() -> str:
    """Source of the guarded install cell: on Colab, install what Colab lacks; elsewhere, nothing."""
    return (
        "# Colab opens only this notebook and has its own front end and scientific stack:\n"
        "# install just the helper package there (elsewhere it is installed already).\n"
        "import sys\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    %pip install -q \"{install_requirement()}\""
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


def environment_report():
    """A small table of what this machine has, for the index notebook."""
    import pandas as pd
    import tensorflow as tf

    rows = [("python", platform.python_version())]
    rows += [(p, _version(p)) for p in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "pandas",
                                        "matplotlib", "seaborn", "ipywidgets",
                                        "cdp-tutorial")]
    rows.append(("GPUs", str(len(tf.config.list_physical_devices("GPU")))))
    return pd.DataFrame(rows, columns=["component", "version"]).set_index("component")
