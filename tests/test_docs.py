"""The examples in the core modules' docstrings run and print what they say."""

import doctest

import pytest

from cdp_tutorial import complexity, graph, pruning, rebuild, sampling


@pytest.mark.parametrize("module", [complexity, graph, sampling, pruning, rebuild], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
