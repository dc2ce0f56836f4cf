"""The channel graph on the models people actually bring: each structure a small hand-made model.

For each one, the promise to a user is the same: ``profile`` counts exactly what Keras stores
(``totals.params == count_params()``), Algorithm 1 meets its target, and ``apply_plan`` builds a
model (fresh, and keeping the trained weights) that runs and whose profile is the plan's final
totals: never a wrong model.
"""

import keras
import numpy as np
import pytest
from keras import layers as L
from keras import ops

import cdp_tutorial as cdp
from cdp_tutorial.graph import analyse


def round_trip(model, mode="params", target=0.6, coupled="tie"):
    """Profile, plan and rebuild ``model`` both ways; return the plan and the two pruned models."""
    assert cdp.profile(model).totals.params == model.count_params()
    plan = cdp.plan_pruning(model, mode, target=target, seed=0, coupled=coupled)
    assert plan.final.mode_total(mode) <= target * plan.baseline.mode_total(mode)
    x = np.random.default_rng(0).random((2, *model.inputs[0].shape[1:]), dtype="float32")
    pruned = []
    for keep_weights in (False, True):
        small = cdp.apply_plan(model, plan, keep_weights=keep_weights)
        assert small(x).shape[0] == 2
        assert cdp.profile(small).totals == plan.final
        assert small.count_params() == plan.final.params
        pruned.append(small)
    return plan, *pruned


def test_sequential_built_with_add():
    """Keras rebuilds a Sequential on every .add(), leaving stale calls; the walk follows the used ones."""
    model = keras.Sequential()
    model.add(keras.Input((16, 16, 3)))
    model.add(L.Conv2D(8, 3, name="c1"))
    model.add(L.BatchNormalization())
    model.add(L.ReLU())
    model.add(L.Conv2D(8, 3, name="c2"))
    model.add(L.GlobalAveragePooling2D())
    model.add(L.Dense(3))
    plan, _, _ = round_trip(model)
    assert set(plan.widths) == {"c1", "c2"}


def backbone():
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, padding="same", name="bb_c1")(inputs)
    x = L.BatchNormalization(name="bb_bn")(x)
    return keras.Model(inputs, L.Conv2D(16, 3, padding="same", name="bb_c2")(x), name="backbone")


def test_nested_backbone_is_counted_and_pruned_inside():
    """The transfer-learning shape: a backbone model used as a layer, then a new head."""
    inputs = keras.Input((16, 16, 3))
    x = backbone()(inputs)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, L.Dense(3, name="head")(x))
    plan, small, kept = round_trip(model)
    assert {"bb_c1", "bb_c2"} <= set(plan.widths)
    assert small.get_layer("backbone").get_layer("bb_c2").filters == plan.widths["bb_c2"]
    # the kept-weights model reads the surviving channels: its head still gets one weight per channel
    assert kept.get_layer("head").get_weights()[0].shape == (plan.widths["bb_c2"], 3)


def test_backbone_inside_a_sequential():
    model = keras.Sequential([keras.Input((16, 16, 3)), backbone(), L.Flatten(), L.Dense(3)])
    round_trip(model)


def test_raw_ops_between_layers():
    """Hard-swish written with keras.ops (as MobileNetV3 does): x * relu6(x + 3) / 6."""
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = x * ops.relu6(x + 3.0) * (1.0 / 6.0)
    x = ops.relu(L.Conv2D(8, 3, name="c2")(x))
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(x)))
    graph = analyse(model)
    assert not graph.group_of("c1").frozen_by  # the ops pass channels through
    round_trip(model)


def test_raw_op_with_a_per_channel_constant_freezes_what_it_touches():
    """x + a constant vector would need slicing too: the walk refuses to prune it, never miscounts."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, name="c1")(inputs)
    x = x + np.arange(4, dtype="float32")
    model = keras.Model(inputs, L.Conv2D(2, 1, name="c2")(x))
    assert "read by" in analyse(model).group_of("c1").frozen_by[0]


def attention_model():
    inputs = keras.Input((16, 16, 3))
    feat = L.Conv2D(16, 3, padding="same", name="feat")(inputs)
    mask = L.Conv2D(1, 1, activation="sigmoid", name="mask")(feat)
    x = L.Conv2D(8, 3, name="after")(L.Multiply(name="spatial_attention")([mask, feat]))
    gate = L.GlobalAveragePooling2D(keepdims=True)(x)
    gate = L.Conv2D(4, 1, name="se_reduce")(gate)
    gate = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(gate)
    x = L.Multiply(name="se_scale")([x, gate])
    return keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(x)))


def test_broadcast_merges_tie_only_equal_channel_axes():
    """A 1-channel mask times 16 features is not a tie; a squeeze-excite gate (1, 1, C) is.

    The gate ties ``after`` and ``se_expand`` into one unit, but it is no residual connection:
    ``coupled="skip"`` prunes it too (as one unit).
    """
    model = attention_model()
    graph = analyse(model)
    assert graph.group_of("feat").producers == ["feat"]
    assert graph.group_of("mask").width == 1
    gated = graph.group_of("after")
    assert gated.producers == ["after", "se_expand"]
    assert gated.gated_by == ["se_scale"] and not gated.coupled
    assert gated in graph.prunable_groups("skip")
    round_trip(model, coupled="tie")
    plan, _, _ = round_trip(model, coupled="skip", target=0.7)
    assert ["after", "se_expand"] in plan.tied


def test_grouped_conv_reading_a_concatenation_is_frozen_and_keeps_its_weights():
    """Conv groups would straddle the concatenated parts: what it reads stays whole, untouched."""
    inputs = keras.Input((16, 16, 8))
    a = L.Conv2D(6, 3, padding="same", name="c1")(inputs)
    b = L.Conv2D(2, 3, padding="same", name="c2")(inputs)
    x = L.Conv2D(16, 3, groups=4, name="grouped")(L.Concatenate()([a, b]))
    x = L.Conv2D(8, 1, name="c3")(x)
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
    assert any("grouped conv 'grouped'" in reason for reason in analyse(model).group_of("c1").frozen_by)
    plan, _, kept = round_trip(model, target=0.9)
    assert set(plan.widths) == {"c3"}
    np.testing.assert_array_equal(kept.get_layer("grouped").get_weights()[0],
                                  model.get_layer("grouped").get_weights()[0])


def test_channels_first_is_refused_with_the_layer_name():
    inputs = keras.Input((3, 16, 16))
    x = L.Conv2D(8, 3, data_format="channels_first", name="cf_conv")(inputs)
    model = keras.Model(inputs, x)
    with pytest.raises(ValueError, match="cf_conv.*channels_first"):
        cdp.profile(model)


def test_conv1d_and_prelu():
    inputs = keras.Input((32, 3))
    x = L.PReLU(shared_axes=[1])(L.Conv1D(8, 3, name="c1")(inputs))
    x = L.Conv1D(8, 3, name="c2")(x)
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling1D()(x)))
    report = cdp.profile(model)
    assert report.layers.set_index("name").loc["c2", "macs"] == 3 * 8 * 8 * 28  # K C_in C_out L_out
    round_trip(model)


def test_conv3d_and_group_normalization():
    inputs = keras.Input((8, 8, 8, 2))
    x = L.Conv3D(4, 3, name="c1")(inputs)
    x = L.GroupNormalization(groups=2, name="gn")(x)
    x = L.Conv3D(4, 3, name="c2")(x)
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(x)))
    assert any("gn" in reason for reason in analyse(model).group_of("c1").frozen_by)
    round_trip(model)


def test_transposed_conv_and_normalization():
    """MACs of a transposed conv: every input position scatters a K×K×C_out kernel."""
    inputs = keras.Input((8, 8, 3))
    x = L.Normalization(name="norm")(inputs)
    x = L.Conv2D(8, 3, name="c1")(x)
    x = L.Conv2DTranspose(6, 3, strides=2, name="up")(x)
    x = L.Conv2D(4, 3, name="c3")(x)
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(x)))
    rows = cdp.profile(model).layers.set_index("name")
    assert rows.loc["up", "macs"] == 3 * 3 * 8 * 6 * 6 * 6  # K² C_in C_out H_in W_in
    assert rows.loc["norm", "params"] == 3 + 3 + 1  # mean, variance, sample count
    round_trip(model)


def test_shared_layer_is_refused_with_its_name():
    inputs = keras.Input((8, 8, 4))
    conv = L.Conv2D(4, 3, padding="same", name="shared")
    model = keras.Model(inputs, conv(conv(inputs)))
    with pytest.raises(ValueError, match="'shared' is used at two places"):
        analyse(model)


def test_printed_groups_say_what_is_coupled_and_why_frozen():
    text = str(analyse(attention_model()))
    assert "after (+1 tied): 8 channels from after, se_expand" in text
    assert "gated by se_scale (shrinks as one unit)" in text
    assert "FROZEN: dense layer" in text
