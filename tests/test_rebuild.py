"""apply_plan(): a plan becomes a real, smaller Keras model that runs, saves and reloads."""

import keras
import numpy as np
import pytest

import cdp_tutorial as cdp

L = keras.layers
NAMES = ["vgg16", "alexnet", "resnet50", "mobilenetv2"]


@pytest.fixture(scope="module")
def pruned(cifar_models):
    """``{name: (plan, model)}``: each CIFAR network planned to 40 % of its parameters and rebuilt, once.

    Rebuilding takes about a second per hundred layers; the tests that only read the result share it.
    """
    plans = {name: cdp.plan_pruning(cifar_models[name], "PA", target=0.4, seed=0) for name in NAMES}
    return {name: (plan, cdp.apply_plan(cifar_models[name], plan)) for name, plan in plans.items()}


@pytest.mark.parametrize("name", NAMES)
def test_pruned_model_is_smaller_runs_and_keeps_layer_names(cifar_models, pruned, name):
    model = cifar_models[name]
    plan, small = pruned[name]
    assert small is not model and [l.name for l in small.layers] == [l.name for l in model.layers]
    for layer_name, width in plan.widths.items():
        assert small.get_layer(layer_name).filters == width
    assert small.count_params() <= 0.4 * model.count_params()
    out = small(np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32"))
    assert out.shape == (2, 10)
    np.testing.assert_allclose(np.sum(out, axis=1), 1.0, rtol=1e-5)


def _silence(model, plan, seed):
    """A copy of ``model`` whose pruned filters output zero (BN gamma = beta = 0 for them)."""
    from cdp_tutorial.graph import analyse

    graph = analyse(model)
    rng = np.random.default_rng(seed)
    silenced = keras.models.clone_model(model)
    silenced.set_weights(model.get_weights())
    for name, width in plan.widths.items():
        group = graph.group_of(name)
        if group.producers[0] != name:
            continue  # tied layers share the first producer's draw
        keep = np.sort(rng.choice(group.width, size=width, replace=False)) if width < group.width \
            else np.arange(group.width)
        drop = np.setdiff1d(np.arange(group.width), keep)
        for producer in group.producers:
            bn = silenced.get_layer(producer + "_bn")
            gamma, beta, mean, var = bn.get_weights()
            gamma[drop], beta[drop] = 0.0, 0.0
            bn.set_weights([gamma, beta, mean, var])
    return silenced


def residual_net():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", name="c1")(inputs)
    x = L.BatchNormalization(name="c1_bn")(x)
    x = L.ReLU()(x)
    a = L.Conv2D(6, 3, padding="same", name="c2")(x)
    a = L.BatchNormalization(name="c2_bn")(a)
    x = L.Add()([x, a])
    x = L.ReLU()(x)
    b = L.Conv2D(5, 3, padding="same", name="c3")(x)
    b = L.BatchNormalization(name="c3_bn")(b)
    b = L.ReLU()(b)
    x = L.Concatenate()([x, b])
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Conv2D(7, 1, name="c4")(x)
    x = L.BatchNormalization(name="c4_bn")(x)
    x = L.ReLU()(x)
    x = L.Flatten()(x)
    return keras.Model(inputs, L.Dense(3, name="out")(x))


def test_kept_weights_reproduce_the_silenced_original():
    """Keeping weights slices every reader correctly: conv in/out, BN, depthwise, concat, Flatten+Dense."""
    keras.utils.set_random_seed(0)
    model = residual_net()
    # random BN statistics so a wrong slice would show
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            shapes = [w.shape for w in layer.get_weights()]
            rng = np.random.default_rng(1)
            layer.set_weights([rng.uniform(0.5, 1.5, s).astype("float32") for s in shapes])
    plan = cdp.plan_pruning(model, "flops", target=0.5, seed=5, coupled="tie")
    assert any(w < plan.baseline_widths[n] for n, w in plan.widths.items() if n in ("c1", "c2"))
    small = cdp.apply_plan(model, plan, keep_weights=True, seed=9)
    x = np.random.default_rng(2).random((4, 8, 8, 3), dtype="float32")
    expected = keras.ops.convert_to_numpy(_silence(model, plan, seed=9)(x, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(small(x, training=False)), expected, rtol=1e-4, atol=1e-5)


def test_fresh_initialisation_by_default(cifar_models):
    model = cifar_models["alexnet"]
    plan = cdp.plan_pruning(model, "FA", target=0.5, seed=0)
    a, b = cdp.apply_plan(model, plan), cdp.apply_plan(model, plan)
    assert not np.allclose(a.get_layer("conv3").get_weights()[0], b.get_layer("conv3").get_weights()[0])


def test_keras_round_trip_identical_outputs(pruned, tmp_path):
    _, small = pruned["mobilenetv2"]
    path = tmp_path / "pruned.keras"
    small.save(path)
    reloaded = keras.models.load_model(path)
    x = np.random.default_rng(0).random((3, 32, 32, 3), dtype="float32")
    # direct calls, not predict(): predict traces a graph per model (about 3 s each for MobileNetV2 here)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(small(x, training=False)),
                                  keras.ops.convert_to_numpy(reloaded(x, training=False)))
    assert cdp.profile(reloaded).totals == cdp.profile(small).totals


def test_plan_for_another_model_is_refused(cifar_models):
    plan = cdp.plan_pruning(cifar_models["vgg16"], "PA", target=0.5, seed=0)
    with pytest.raises(ValueError, match="does not have"):
        cdp.apply_plan(cifar_models["resnet50"], plan)
    narrow = cdp.models.vgg16(width_multiplier=0.5)
    with pytest.raises(ValueError, match="plan was made for 64"):
        cdp.apply_plan(narrow, plan)


def test_user_model_keep_weights_runs(user_model):
    plan = cdp.plan_pruning(user_model, "params", target=0.5, seed=0, coupled="tie")
    small = cdp.apply_plan(user_model, plan, keep_weights=True)
    assert small(np.ones((2, 16, 16, 3), "float32")).shape == (2, 5)
    assert small.get_layer("concat").output.shape[-1] == plan.widths["sep_left"] + plan.widths["right"]


@pytest.mark.parametrize("name", NAMES)
def test_builder_with_plan_widths_matches_apply_plan(pruned, name):
    """Two roads to the pruned model, one architecture: the builder given plan.widths, and apply_plan."""
    plan, applied = pruned[name]
    built = cdp.models.build_model(name, widths=plan.widths)
    assert cdp.profile(built).totals == plan.final
    assert [(l.name, l.output.shape) for l in built.layers] == [(l.name, l.output.shape) for l in applied.layers]


def small_chain():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", name="c1")(inputs)
    x = L.ReLU()(x)
    x = L.Conv2D(4, 3, padding="same", name="c2")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(2, name="out")(x))


def test_importance_keeps_the_highest_scoring_filters():
    """The hook importance criteria build on: scores choose which trained filters survive."""
    model = small_chain()
    plan = cdp.plan_uniform(model, "params", target=0.6)
    kept = plan.widths["c1"]
    assert kept < 6
    scores = np.array([0.1, 5.0, 0.3, 5.0, 2.0, 0.2])  # tie between filters 1 and 3
    c2_scores = np.array([4.0, 3.0, 2.0, 1.0])  # keeps c2's first filters
    small = cdp.apply_plan(model, plan, keep_weights=True, importance={"c1": scores, "c2": c2_scores})
    expected = np.sort(np.lexsort((np.arange(6), -scores))[:kept])
    kernel, bias = model.get_layer("c1").get_weights()
    new_kernel, new_bias = small.get_layer("c1").get_weights()
    np.testing.assert_array_equal(new_kernel, kernel[..., expected])
    np.testing.assert_array_equal(new_bias, bias[expected])
    # the next conv reads exactly those channels
    np.testing.assert_array_equal(small.get_layer("c2").get_weights()[0],
                                  model.get_layer("c2").get_weights()[0][:, :, expected, :plan.widths["c2"]])


@pytest.mark.parametrize("importance, message", [
    ({"nope": np.ones(6)}, "not a conv layer"),
    ({"c1": np.ones(5)}, "one score per filter"),
    ({"c1": np.array([1, 2, np.nan, 0, 0, 0])}, "NaN"),
])
def test_bad_importance_is_refused(importance, message):
    model = small_chain()
    plan = cdp.plan_uniform(model, "params", target=0.6)
    with pytest.raises(ValueError, match=message):
        cdp.apply_plan(model, plan, keep_weights=True, importance=importance)


def test_importance_needs_keep_weights():
    model = small_chain()
    plan = cdp.plan_uniform(model, "params", target=0.6)
    with pytest.raises(ValueError, match="keep_weights=True"):
        cdp.apply_plan(model, plan, importance={"c1": np.ones(6)})
