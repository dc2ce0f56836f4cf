"""Models nobody wrote for this package: custom layers, unknown input sizes, grouped convs, SE, attention.

One small model per structure, each used as a user would: ``profile`` counts exactly what Keras
stores (and the MACs a hand count gives; ``tests/test_flops_crosscheck.py`` recounts these models'
MACs with TensorFlow's profiler), Algorithm 1 meets its target, and ``apply_plan`` builds a
smaller model that runs and gives outputs of the right shape. Where the old rules froze channels
(grouped convs, squeeze-excite reshapes), the lowest reachable target must now be lower.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers as L
from keras import ops

import cdp_tutorial as cdp
from cdp_tutorial.graph import analyse
from cdp_tutorial.pruning import PruningProblem
from cdp_tutorial.rebuild import surviving_channels


def lowest_target(model, mode="params", coupled="skip", **kwargs) -> float:
    """The lowest target Algorithm 1 can reach: every prunable unit at its minimum width."""
    problem = PruningProblem(model, coupled=coupled, **kwargs)
    return problem.total(problem.minimum_widths(), mode) / problem.total(problem.baseline_widths, mode)


def images(model, n=2, shape=None):
    shape = shape or model.inputs[0].shape[1:]
    return np.random.default_rng(0).random((n, *shape), dtype="float32")


def plan_and_build(model, mode="params", target=0.5, **kwargs):
    """Plan, rebuild, run: the pruned model's outputs have the original's shape and its profile is
    the plan's final totals."""
    shape = kwargs.get("input_shape")
    assert cdp.profile(model, input_shape=shape).totals.params == model.count_params()
    plan = cdp.plan_pruning(model, mode, target=target, seed=0, **kwargs)
    assert plan.final.mode_total(plan.mode) <= target * plan.baseline.mode_total(plan.mode)
    small = cdp.apply_plan(model, plan)
    x = images(model, shape=shape)
    assert small(x).shape == model(x).shape
    assert cdp.profile(small, input_shape=shape).totals == plan.final
    assert small.count_params() == plan.final.params
    return plan, small


def silenced_copy(model, plan, seed):
    """A copy of ``model`` whose pruned filters output zero (their kernel and bias set to 0)."""
    graph = analyse(model)
    kept = surviving_channels(graph, plan.widths, seed)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for name in plan.widths:
        group = graph.group_of(name)
        drop = np.setdiff1d(np.arange(group.width), kept[group.id])
        kernel, *bias = copy.get_layer(name).get_weights()
        kernel[..., drop] = 0.0
        copy.get_layer(name).set_weights([kernel, *[np.where(np.isin(np.arange(len(b)), drop), 0, b)
                                                   for b in bias]])
    return copy


# ---------------------------------------------------------------------------- custom layers
class DepthToSpace(L.Layer):
    """A sub-pixel shuffle as users write it: ``__init__`` takes only the block size."""

    def __init__(self, block_size):
        super().__init__()
        self.block_size = block_size

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)


class LearnedScale(L.Layer):
    """A custom layer *with* a weight and the same too-narrow ``__init__``."""

    def __init__(self, initial):
        super().__init__()
        self.initial = initial

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.initial))

    def call(self, inputs):
        return inputs * self.scale


def super_resolution(head=None):
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="c1")(inputs)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="c2")(x)
    x = L.Conv2D(4, 3, padding="same", name="to_pixels")(x)
    x = DepthToSpace(2)(x)
    return keras.Model(inputs, head(x) if head else x)


def test_custom_weightless_layer_is_reused_not_rebuilt():
    """Keras cannot rebuild DepthToSpace from its config; apply_plan reuses it, as the plan leaves it."""
    model = super_resolution()
    with pytest.raises(TypeError):  # the reason apply_plan must not rebuild it
        DepthToSpace.from_config(model.layers[-1].get_config())
    plan, small = plan_and_build(model)
    assert small(images(model)).shape == (2, 16, 16, 1)
    assert small.layers[-1] is model.layers[-1]  # weightless and untouched: the same object
    assert small.get_layer("c1").filters < 16 or small.get_layer("c2").filters < 8


def test_custom_layer_with_weights_that_cannot_be_rebuilt_is_named():
    model = super_resolution(head=LearnedScale(2.0))
    plan = cdp.plan_pruning(model, "params", target=0.5, seed=0)
    with pytest.raises(ValueError, match=r"cannot rebuild layer 'learned_scale.*' \(LearnedScale\).*"
                                         r"holds variables.*get_config\(\)"):
        cdp.apply_plan(model, plan)


# ---------------------------------------------------------------------------- unknown input sizes
def enhancement_net(shape=(None, None, 3)):
    """Fully convolutional, as image-enhancement and segmentation nets are: any input size."""
    inputs = keras.Input(shape)
    c1 = L.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inputs)
    c2 = L.Conv2D(8, 3, padding="same", activation="relu", name="c2")(c1)
    x = L.Concatenate()([c2, c1])
    return keras.Model(inputs, L.Conv2D(3, 3, padding="same", activation="tanh", name="out")(x))


def test_unknown_input_size_is_refused_up_front_saying_what_to_pass():
    model = enhancement_net()
    for call in (lambda: cdp.profile(model), lambda: cdp.plan_pruning(model, "FA", target=0.5)):
        with pytest.raises(ValueError, match=r"\(None, None, 3\).*unknown.*input_shape=\(224, 224, 3\)"):
            call()


def test_unknown_input_size_is_counted_at_the_size_given():
    model = enhancement_net()
    report = cdp.profile(model, input_shape=(16, 12, 3))
    assert report.totals == cdp.profile(enhancement_net((16, 12, 3))).totals
    assert report.totals.params == model.count_params()
    assert report.totals.macs == 16 * 12 * 9 * (3 * 8 + 8 * 8 + 16 * 3)  # K² C_in C_out H W, three convs
    assert list(cdp.layer_weights(model, "FA", input_shape=(16, 12, 3)).index) == ["c1", "c2"]
    plan, small = plan_and_build(model, "flops", input_shape=(16, 12, 3))
    assert small.inputs[0].shape[1:] == (None, None, 3)  # still runs at any size
    assert small(images(model, shape=(20, 20, 3))).shape == (2, 20, 20, 3)


@pytest.mark.parametrize("shape, error, message", [
    ((16, 16, 1), ValueError, "disagrees with the model's input shape"),
    ((16, 16), ValueError, "3 input sizes without the batch axis"),
    ((16, 0, 3), ValueError, "input_shape size"),
    ("16x16", TypeError, "tuple of 3 sizes"),
])
def test_bad_input_shape_is_refused(shape, error, message):
    with pytest.raises(error, match=message):
        cdp.profile(enhancement_net(), input_shape=shape)


# ---------------------------------------------------------------------------- grouped convolutions
def conv_mixer(width=16, depth=2):
    """ConvMixer: Conv2D(groups=channels) mixes space, a residual Add around it, a 1x1 conv mixes channels."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(width, 2, strides=2, activation="gelu", name="stem")(inputs)
    for i in range(depth):
        mixed = L.Conv2D(width, 3, groups=width, padding="same", activation="gelu", name=f"dw{i}")(x)
        x = L.Add(name=f"residual{i}")([mixed, x])
        x = L.Conv2D(width, 1, activation="gelu", name=f"pw{i}")(x)
    return keras.Model(inputs, L.Dense(3, name="head")(L.GlobalAveragePooling2D()(x)))


def resnext_block(groups=4):
    """ResNeXt's bottleneck: 1x1 conv, a 3x3 conv with 4 groups of 2 channels, 1x1 conv."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 1, activation="relu", name="reduce")(inputs)
    x = L.Conv2D(12, 3, groups=groups, padding="same", activation="relu", name="grouped")(x)
    x = L.Conv2D(6, 1, activation="relu", name="expand")(x)
    return keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x)))


def test_conv_with_one_channel_per_group_follows_its_input_like_a_depthwise_conv():
    model = conv_mixer()
    graph = analyse(model)
    assert graph.layers["dw0"].role == "depthwise"
    assert not graph.group_of("stem").frozen_by and not graph.group_of("stem").coupled
    assert lowest_target(model) < 0.1  # the old rules froze every group here: nothing was prunable
    report = cdp.profile(model).layers.set_index("name")
    assert report.loc["dw0", "macs"] == 3 * 3 * 16 * 4 * 4  # K² C H W, one filter per channel
    plan, small = plan_and_build(model, "flops")
    for i in range(2):  # groups and filters shrink with the channels they read
        layer = small.get_layer(f"dw{i}")
        assert layer.groups == layer.filters == (plan.widths["stem"] if i == 0 else plan.widths["pw0"])


def test_grouped_conv_prunes_whole_groups():
    model = resnext_block()
    graph = analyse(model)
    assert graph.layers["grouped"].role == "grouped" and graph.group_of("reduce").block == 2
    plan, small = plan_and_build(model, "params", target=0.6)
    assert plan.widths["reduce"] % 2 == 0  # whole groups of 2 input channels
    layer = small.get_layer("grouped")
    assert layer.groups == plan.widths["reduce"] // 2 and layer.filters == 3 * layer.groups
    assert lowest_target(model) < lowest_target(model, ignored_layers=["reduce"])


@pytest.mark.parametrize("build", [conv_mixer, resnext_block])
def test_kept_weights_of_grouped_convs_reproduce_the_silenced_original(build):
    keras.utils.set_random_seed(0)
    model = build()
    plan = cdp.plan_pruning(model, "flops", target=0.6, seed=1)
    small = cdp.apply_plan(model, plan, keep_weights=True, seed=4)
    x = images(model, n=3)
    expected = silenced_copy(model, plan, seed=4).predict(x, verbose=0)
    np.testing.assert_allclose(small.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)


def test_plan_width_that_splits_a_conv_group_is_refused():
    model = resnext_block()
    plan = cdp.plan_pruning(model, "params", target=0.6, seed=0)
    plan.widths["reduce"] = 5
    with pytest.raises(ValueError, match="multiple of 2.*whole groups"):
        cdp.apply_plan(model, plan)


def test_unreachable_message_names_what_froze_the_channels_and_suggests_tie_only_when_it_helps():
    mixer = conv_mixer()  # its Adds tie nothing (a group with itself): tying cannot help
    with pytest.raises(ValueError, match="lowest reachable target") as error:
        cdp.plan_pruning(mixer, "params", target=0.001, seed=0)
    assert "coupled='tie'" not in str(error.value)

    inputs = keras.Input((8, 8, 3))  # a custom op and a residual Add each hold channels whole
    x = L.Conv2D(8, 3, padding="same", name="c0")(inputs)
    x = L.Conv2D(8, 3, padding="same", name="c1")(x)
    x = L.Add()([x, L.Conv2D(8, 3, padding="same", name="c2")(x)])
    x = LearnedScale(1.0)(L.Conv2D(8, 3, padding="same", name="c3")(x))
    model = keras.Model(inputs, L.Conv2D(4, 1, name="c4")(x))
    with pytest.raises(ValueError) as error:
        cdp.plan_pruning(model, "params", target=0.01, seed=0)
    text = str(error.value)
    assert "tied by residual merges ('add" in text and "Try coupled='tie'" in text
    assert "frozen, read by 'learned_scale" in text and "standard Keras layers" in text


# ---------------------------------------------------------------------------- squeeze-excite
def se_net(raw_ops=False):
    """EfficientNet's squeeze-excite: GAP, Reshape((1, 1, C)), reduce, expand, Multiply."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 1, activation="swish", name="expand_conv")(inputs)
    x = L.DepthwiseConv2D(3, padding="same", activation="swish", name="dw")(x)
    squeezed = L.GlobalAveragePooling2D(name="se_squeeze")(x)
    if raw_ops:  # the same block written with keras.ops
        se = ops.expand_dims(ops.expand_dims(squeezed, 1), 1)
    else:
        se = L.Reshape((1, 1, 16), name="se_reshape")(squeezed)
    se = L.Conv2D(4, 1, activation="swish", name="se_reduce")(se)
    se = L.Conv2D(16, 1, activation="sigmoid", name="se_expand")(se)
    x = L.Multiply(name="se_excite")([x, se])
    x = L.Conv2D(8, 1, name="project")(x)
    pooled = L.GlobalAveragePooling2D(keepdims=True)(x)  # (1, 1, 8) ...
    flat = ops.squeeze(pooled, axis=(1, 2)) if raw_ops else L.Flatten(name="flatten")(pooled)
    return keras.Model(inputs, L.Dense(3, name="head")(flat))


@pytest.mark.parametrize("raw_ops", [False, True], ids=["layers", "keras.ops"])
def test_squeeze_excite_passes_channels_and_prunes_as_one_unit(raw_ops):
    model = se_net(raw_ops)
    graph = analyse(model)
    gated = graph.group_of("expand_conv")
    assert gated.producers == ["expand_conv", "se_expand"] and not gated.frozen_by
    assert not graph.group_of("project").frozen_by  # flattening a 1x1 map passes channels too
    assert lowest_target(model) < 0.3
    plan, small = plan_and_build(model, "params", target=0.4)
    assert plan.widths["expand_conv"] == plan.widths["se_expand"] < 16
    if not raw_ops:  # the reshape's target shape follows the pruned channels
        assert small.get_layer("se_reshape").target_shape == (1, 1, plan.widths["expand_conv"])
    kept = cdp.apply_plan(model, plan, keep_weights=True)
    assert kept(images(model)).shape == (2, 3)


def test_reshape_that_mixes_channels_still_freezes():
    inputs = keras.Input((4, 4, 8))
    x = L.Conv2D(8, 1, name="c1")(inputs)
    x = L.Reshape((4, 8, 4))(x)  # channel axis split: channel c is no longer channel c
    model = keras.Model(inputs, L.Conv2D(2, 1, name="c2")(x))
    assert analyse(model).group_of("c1").frozen_by


# ---------------------------------------------------------------------------- attention
def attention_net():
    inputs = keras.Input((4, 4, 3))
    x = L.Conv2D(8, 1, name="embed")(inputs)
    x = L.Reshape((16, 8))(x)
    x = L.MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3, name="attention")(x, x)
    x = L.Dense(32, name="mlp")(x)  # applied at each of the 16 positions: prunable like a 1x1 conv
    return keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling1D()(x)))


def test_attention_macs_follow_the_documented_formula():
    model = attention_net()
    rows = cdp.profile(model).layers.set_index("name")
    n, d, heads, k, v = 16, 8, 2, 4, 3
    projections = n * d * heads * k * 2 + n * d * heads * v
    scores, weighted_sum, output = heads * k * n * n, heads * v * n * n, n * heads * v * d
    assert rows.loc["attention", "macs"] == projections + scores + weighted_sum + output
    assert rows.loc["attention", "params"] == model.get_layer("attention").count_params()
    plan, _ = plan_and_build(model, "flops", target=0.8)
    assert set(plan.widths) == {"mlp"}  # the attention's widths stay whole


def test_unreachable_message_names_round_to_and_min_keep_floors():
    model = resnext_block()
    with pytest.raises(ValueError, match=r"round_to/min_keep keep more filters.*without them: 0\.\d{4}"):
        cdp.plan_pruning(model, "params", target=0.3, seed=0, min_keep=0.9)
