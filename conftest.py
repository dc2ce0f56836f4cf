"""Test-session settings shared by the unit tests and the notebooks (nbval).

Notebooks keep their training runs in a results folder and reuse finished runs, which is what a reader
rerunning a notebook by hand wants. A regression test must not: a second ``pytest`` in the same checkout
would otherwise re-execute notebooks 04-06 without training anything and compare the previous code's
numbers. So every test session gets one fresh, temporary results folder, through ``CDP_RESULTS_DIR``
(read by each notebook's ``parameters`` cell; the kernels nbval starts inherit it). Within one session,
notebook 06 still reuses the runs notebook 04 trained. A folder given from outside is kept as it is.

The README's test command runs the suite on two processes (``pytest -n 2``, pytest-xdist). Every cell
of a notebook must run in one kernel, in order, and notebooks 06 and 09 reuse the runs notebook 04
trains; so the scheduler below sends each test file to one worker, whole and in order (module fixtures,
such as the tests' local Ray instance, are then made once), and 04, 06 and 09 to one worker together,
in that order. The workers inherit the results folder made here, before they start.

The longest groups are handed out first (``LONGEST_FIRST``): started last, the three notebooks that
share runs (about a quarter of the suite) would run alone at the end while the other worker idles.
"""

import os
import shutil
import tempfile

import pytest

RESULTS_ENV = "CDP_RESULTS_DIR"
_created = []
# notebooks that read another's training runs: they run on one worker, in this (file name) order
SHARING_RUNS = ("04_", "06_", "09_")
SHARED_GROUP = "notebooks sharing runs"
# the longest groups, longest first (seconds on one process, 2-core Xeon, 2026-11-30): handed out before
# the rest, which follow in xdist's own order (most tests first)
LONGEST_FIRST = (SHARED_GROUP,                                # 04 + 06 + 09: about 250 s
                 "notebooks/08_edgecompress.ipynb",            # about 160 s
                 "tests/test_ways_in.py",                      # Ray: workers that import TensorFlow
                 "tests/test_experiments.py",
                 "notebooks/05_baselines_and_training_cost.ipynb",
                 "tests/test_edgecompress.py")


def pytest_configure(config):
    if not os.environ.get(RESULTS_ENV):
        os.environ[RESULTS_ENV] = tempfile.mkdtemp(prefix="cdp-notebook-results-")
        _created.append(os.environ[RESULTS_ENV])


def pytest_unconfigure(config):
    for folder in _created:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(RESULTS_ENV, None)


def worker_group(nodeid: str) -> str:
    """The tests that go to one worker together, in order: a test file, or the notebooks sharing runs."""
    path = nodeid.split("::", 1)[0]
    name = path.rsplit("/", 1)[-1]
    return SHARED_GROUP if name.endswith(".ipynb") and name.startswith(SHARING_RUNS) else path


def longest_first(groups):
    """``groups`` reordered: those named in ``LONGEST_FIRST`` first, in its order; the rest as given."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    return sorted(groups, key=lambda group: rank.get(group, len(rank)))  # a stable sort keeps the rest's order


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: without xdist, pytest never calls it
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class NotebookAwareScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return worker_group(nodeid)

        def _assign_work_unit(self, node):
            for group in reversed(longest_first(self.workqueue)):  # the queue is an OrderedDict of groups
                self.workqueue.move_to_end(group, last=False)
            super()._assign_work_unit(node)  # hands out the queue's first group

    return NotebookAwareScheduling(config, log)
