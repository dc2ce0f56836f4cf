"""Weighted layer sampling (Eqs. 4, 6, 8): probabilities, aliases, reproducible draws."""

import numpy as np
import pytest

import cdp_tutorial as cdp
from cdp_tutorial.pruning import layer_weights
from cdp_tutorial.sampling import normalize_mode, sample_layer, selection_probabilities


@pytest.mark.parametrize("alias, mode", [("PA", "params"), ("parameters", "params"), ("fa", "flops"),
                                         ("FLOPs", "flops"), ("Ma", "memory"), ("memory", "memory"),
                                         ("LA", "latency"), ("latency-aware", "latency")])
def test_mode_aliases(alias, mode):
    assert normalize_mode(alias) == mode


@pytest.mark.parametrize("bad", ["speed", "", None, 3])
def test_unknown_mode(bad):
    with pytest.raises(ValueError, match="'params' \\(PA\\), 'flops' \\(FA\\), 'memory' \\(MA\\) or 'latency' \\(LA"):
        normalize_mode(bad)


def test_probabilities_are_shares_of_the_total():
    p = selection_probabilities([1.0, 3.0, 0.0, 4.0])
    assert p.tolist() == [0.125, 0.375, 0.0, 0.5]


@pytest.mark.parametrize("bad, message", [([], "non-empty"), ([1, -1], "non-negative"),
                                          ([0, 0], "no layer"), ([1, np.nan], "finite")])
def test_bad_complexities(bad, message):
    with pytest.raises(ValueError, match=message):
        selection_probabilities(bad)


def test_empirical_frequencies_match_probabilities():
    p = selection_probabilities([5, 1, 3, 1])
    rng = np.random.default_rng(0)
    draws = np.array([sample_layer(p, rng) for _ in range(20_000)])
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, p, atol=0.01)


def test_same_seed_same_draws():
    p = selection_probabilities([2, 1, 1])
    a = [sample_layer(p, np.random.default_rng(7)) for _ in range(3)]
    first = np.random.default_rng(7)
    b = [sample_layer(p, first) for _ in range(50)]
    second = np.random.default_rng(7)
    assert b == [sample_layer(p, second) for _ in range(50)]
    assert len(set(a)) == 1


def test_layer_weights_follow_each_modes_complexity(cifar_models):
    model = cifar_models["vgg16"]
    layers = cdp.profile(model).layers.set_index("name")
    convs = [f"conv{i}" for i in range(1, 14)]
    for mode, column in [("flops", "macs"), ("params", "params"), ("memory", "memory_bytes")]:
        w = layer_weights(model, mode)
        assert list(w.index) == convs
        expected = layers.loc[convs, column] / layers.loc[convs, column].sum()
        np.testing.assert_allclose(w.values, expected.values)
    # FLOPs-aware favours the early, high-resolution convs; parameter-aware the wide late ones
    w_flops, w_params = layer_weights(model, "FA"), layer_weights(model, "PA")
    assert w_flops["conv2"] > w_flops["conv13"] and w_params["conv13"] > w_params["conv2"]


def test_layer_weights_skip_residual_convs_unless_tied(cifar_models):
    model = cifar_models["resnet50"]
    skipped = layer_weights(model, "flops")
    assert "conv2_block1_3_conv" not in skipped.index and "conv2_block1_1_conv" in skipped.index
    tied = layer_weights(model, "flops", coupled="tie")
    assert any(name.startswith("conv2_block1_0_conv") and "tied" in name for name in tied.index)
    assert tied.sum() == pytest.approx(1.0)
