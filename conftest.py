"""Test-session settings shared by the unit tests and the notebooks (nbval).

Notebooks keep their training runs in a results folder and reuse finished runs, which is what a reader
rerunning a notebook by hand wants. A regression test must not: a second ``pytest`` in the same checkout
would otherwise re-execute notebooks 04-06 without training anything and compare the previous code's
numbers. So every test session gets one fresh, temporary results folder, through ``CDP_RESULTS_DIR``
(read by each notebook's ``parameters`` cell; the kernels nbval starts inherit it). Within one session,
notebook 06 still reuses the runs notebook 04 trained. A folder given from outside is kept as it is.
"""

import os
import shutil
import tempfile

RESULTS_ENV = "CDP_RESULTS_DIR"
_created = []


def pytest_configure(config):
    if not os.environ.get(RESULTS_ENV):
        os.environ[RESULTS_ENV] = tempfile.mkdtemp(prefix="cdp-notebook-results-")
        _created.append(os.environ[RESULTS_ENV])


def pytest_unconfigure(config):
    for folder in _created:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(RESULTS_ENV, None)
