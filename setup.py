"""Packaging that pyproject.toml cannot say: the repository's ``data/`` ships inside the package.

``data/`` at the repository root stays the one copy (the notebooks, the tests and pull requests with
device results all use it there). A wheel maps it to ``cdp_tutorial/repository_data/``, so that a
plain ``pip install`` (Colab's install cell, or a wheel installed anywhere) has the fixture, the
reference tables, the device results and our committed results without the repository and without
a network; :func:`cdp_tutorial.data.repository_file` finds a file in either place. Everything else
(metadata, dependencies, the Repository URL) is in pyproject.toml.
"""

from setuptools import find_namespace_packages, find_packages, setup

PACKAGED_DATA = "cdp_tutorial.repository_data"
# data/'s subfolders are listed too: setuptools treats every folder it copies as a (namespace) package
# and warns about any it was not told of.
DATA_FOLDERS = [f"{PACKAGED_DATA}.{name}" for name in find_namespace_packages(where="data")]

setup(
    packages=[*find_packages(include=["cdp_tutorial*"]), PACKAGED_DATA, *DATA_FOLDERS],
    package_dir={PACKAGED_DATA: "data"},
    package_data={PACKAGED_DATA: ["**/*"]},
    # a sweep's resumable run folders (checkpoints, gitignored) stay out of a wheel built from a checkout
    exclude_package_data={PACKAGED_DATA: ["*/runs/*"]},
)
