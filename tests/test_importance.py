"""Filter importance: the five criteria on real (tiny, trained) models, and PLS-VIP against its formula."""

import keras
import numpy as np
import pytest

from cdp_tutorial import apply_plan, plan_uniform
from cdp_tutorial.data import load_dataset
from cdp_tutorial.importance import CRITERIA, filter_scores, vip_scores
from cdp_tutorial.training import train

L = keras.layers


def tiny_residual_net():
    """Two free convs and two convs tied by an Add, with batch norms: every kind of group."""
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU()(x)
    a = L.Conv2D(12, 3, padding="same", name="a")(x)
    a = L.BatchNormalization(name="a_bn")(a)
    b = L.Conv2D(12, 1, name="b")(x)
    b = L.BatchNormalization(name="b_bn")(b)
    x = L.ReLU()(L.Add()([a, b]))
    x = L.Conv2D(16, 3, strides=2, padding="same", name="last")(x)
    x = L.BatchNormalization(name="last_bn")(x)
    x = L.GlobalAveragePooling2D()(L.ReLU()(x))
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="head")(x), name="tiny")


@pytest.fixture(scope="module")
def trained():
    data = load_dataset("fixture", train_size=300, test_size=100)
    keras.utils.set_random_seed(0)
    model = tiny_residual_net()
    train(model, data, "paper", epochs=1, batch_size=64, seed=0, verbose=0)
    return model, data


def standardised(a):
    a = a - a.mean(axis=0)
    std = a.std(axis=0, ddof=1)
    return a / np.where(std > 0, std, 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_component_vip_is_the_covariance_direction(seed):
    # With one component the PLS weight is the top left singular vector of X'Y (standardised data),
    # so VIP_j = sqrt(p) |w_j|: computed here with numpy alone, on random data the package never saw.
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 120)
    features = rng.normal(size=(120, 7)) + np.outer(labels, rng.normal(size=7))
    one_hot = np.eye(4)[labels]
    w = np.linalg.svd(standardised(features).T @ standardised(one_hot))[0][:, 0]
    np.testing.assert_allclose(vip_scores(features, labels, n_components=1), np.sqrt(7) * np.abs(w), rtol=1e-4)  # NIPALS stops at 1e-6


def test_two_component_vip_finds_the_informative_columns():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, 300)
    noise = rng.normal(size=(300, 6))
    features = np.c_[noise[:, :2], (labels == 1) + 0.2 * rng.normal(size=300), noise[:, 2:],
                     (labels == 2) + 0.2 * rng.normal(size=300)]
    vip = vip_scores(features, labels)
    assert set(np.argsort(vip)[-2:]) == {2, 7}
    assert np.sum(vip ** 2) == pytest.approx(features.shape[1])  # squares average to one


@pytest.mark.parametrize("features, labels, message", [
    (np.zeros((5, 3)), np.arange(5), "more samples than classes"),
    (np.ones((2, 4)), np.array([0, 1]), "more samples than classes and than components"),
    (np.ones((10, 1)), np.arange(10) % 2, r"n_components \(2\) cannot exceed"),
    (np.ones(10), np.arange(10) % 2, "2-D"),
    (np.ones((10, 2)), np.zeros(10, dtype=int), "single class"),
    (np.ones((10, 2)), np.linspace(0, 1, 10), "integer classes"),
])
def test_vip_refuses_what_pls_cannot_fit(features, labels, message):
    with pytest.raises(ValueError, match=message):
        vip_scores(features, labels)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_every_criterion_scores_each_group_once(trained, criterion):
    model, data = trained
    scores = filter_scores(model, criterion, data=data, samples=200)
    # the tied pair a+b is one unit, under its first conv; the head is never pruned
    assert {name: len(s) for name, s in scores.items()} == {"stem": 8, "a": 12, "last": 16}
    assert all(np.all(np.isfinite(s)) for s in scores.values())
    assert filter_scores(model, criterion, data=data, samples=200)["last"].tolist() == scores["last"].tolist()


def test_l1_of_a_tied_group_is_the_sum_of_its_convs(trained):
    model, _ = trained
    l1 = filter_scores(model, "l1")["a"]
    by_hand = sum(np.abs(model.get_layer(n).kernel.numpy()).reshape(-1, 12).sum(axis=0) for n in ("a", "b"))
    np.testing.assert_allclose(l1, by_hand, rtol=1e-6)
    np.testing.assert_allclose(filter_scores(model, "bn_gamma")["stem"],
                               np.abs(model.get_layer("stem_bn").gamma.numpy()))


def test_pruning_by_score_keeps_the_best_filters(trained):
    model, _ = trained
    scores = filter_scores(model, "l2", coupled="skip")
    plan = plan_uniform(model, "PA", target=0.6)
    small = apply_plan(model, plan, keep_weights=True, importance=scores)
    kept = small.get_layer("last").filters
    best = np.sort(np.argsort(-scores["last"])[:kept])
    np.testing.assert_array_equal(small.get_layer("last").bias.numpy(), model.get_layer("last").bias.numpy()[best])


def test_bad_requests_fail_before_any_work(trained):
    model, data = trained
    with pytest.raises(ValueError, match="criterion must be one of"):
        filter_scores(model, "taylor")
    with pytest.raises(ValueError, match="pass data="):
        filter_scores(model, "pls")
    with pytest.raises(ValueError, match="more samples than classes"):
        filter_scores(model, "pls", data=data, samples=5)
    no_bn = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, name="c"), L.Flatten(), L.Dense(2)])
    with pytest.raises(ValueError, match="needs a batch norm"):
        filter_scores(no_bn, "bn_gamma")
    dense_only = keras.Sequential([keras.Input((4,)), L.Dense(3), L.Dense(2)])
    with pytest.raises(ValueError, match="no prunable conv"):
        filter_scores(dense_only, "l1")


def test_docstring_examples_run():
    import doctest

    from cdp_tutorial import importance

    result = doctest.testmod(importance)
    assert result.attempted > 0 and result.failed == 0
