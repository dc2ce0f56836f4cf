"""The examples in the core modules' docstrings run and print what they say."""

import doctest

import pytest

from cdp_tutorial import complexity, evidence, graph, pruning, rebuild, results, sampling, stats, store
from cdp_tutorial.training import batchnorm, recipes


@pytest.mark.parametrize("module", [complexity, graph, sampling, pruning, rebuild, results, store, batchnorm, recipes,
                                    evidence, stats], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
