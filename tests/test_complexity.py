"""profile(): hand-counted complexities (Eqs. 3, 5, 7) of small models and of the CIFAR models."""

import keras
import numpy as np
import pytest

import cdp_tutorial as cdp

L = keras.layers


def toy_cnn():
    """The 3-layer toy CNN of notebook 01: conv 3x3 (3->8), pool, conv 3x3 (8->16), global pool, dense."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="conv2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(4, name="fc")(x)
    return keras.Model(inputs, outputs)


def test_toy_cnn_matches_hand_count():
    report = cdp.profile(toy_cnn())
    rows = report.layers.set_index("name")
    # conv1: K^2 C_in C_out + bias = 9*3*8 + 8; MACs = 9*3*8 * 8*8; memory = 4 * (weights+bias + 8*8*8)
    assert rows.loc["conv1", "params"] == 9 * 3 * 8 + 8
    assert rows.loc["conv1", "macs"] == 9 * 3 * 8 * 64
    assert rows.loc["conv1", "memory_bytes"] == 4 * (9 * 3 * 8 + 8 + 64 * 8)
    # conv2 runs on the pooled 4x4 map, no bias
    assert rows.loc["conv2", "params"] == 9 * 8 * 16
    assert rows.loc["conv2", "macs"] == 9 * 8 * 16 * 16
    assert rows.loc["conv2", "output_size"] == "4x4"
    assert rows.loc["fc", "params"] == 16 * 4 + 4
    assert rows.loc["fc", "macs"] == 16 * 4
    assert report.totals.params == 9 * 3 * 8 + 8 + 9 * 8 * 16 + 16 * 4 + 4
    assert report.totals.flops == 2 * report.totals.macs
    assert set(report.layers.name) == {"conv1", "conv2", "fc"}  # pooling costs nothing
    assert report.layers.params_share.sum() == pytest.approx(1.0)


def test_depthwise_separable_grouped_and_dense_on_feature_map():
    inputs = keras.Input((6, 6, 4))
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(inputs)  # 4 -> 8
    x = L.SeparableConv2D(10, 3, padding="same", name="sep")(x)
    x = L.Conv2D(6, 1, groups=2, name="grouped")(x)
    outputs = L.Dense(3, name="per_pixel")(x)  # applied at each of the 36 positions
    rows = cdp.profile(keras.Model(inputs, outputs)).layers.set_index("name")
    assert rows.loc["dw", "params"] == 9 * 4 * 2 + 8
    assert rows.loc["dw", "macs"] == 9 * 8 * 36
    assert rows.loc["sep", "params"] == 9 * 8 + 8 * 10 + 10
    assert rows.loc["sep", "macs"] == 36 * (9 * 8 + 8 * 10)
    assert rows.loc["grouped", "params"] == 10 // 2 * 6 + 6
    assert rows.loc["grouped", "macs"] == 36 * 10 // 2 * 6
    assert rows.loc["per_pixel", "macs"] == 36 * 6 * 3


def test_batchnorm_counts_parameters_but_no_macs():
    model = keras.Sequential([keras.Input((4, 4, 3)), L.Conv2D(5, 3, name="c"), L.BatchNormalization(name="bn")])
    report = cdp.profile(model)
    bn = report.layers.set_index("name").loc["bn"]
    assert (bn.params, bn.macs, bn.memory_bytes) == (4 * 5, 0, 4 * 4 * 5)
    assert report.totals.params == model.count_params()


@pytest.mark.parametrize("name", ["vgg16", "alexnet", "resnet50", "mobilenetv2"])
def test_totals_agree_with_keras_parameter_count(cifar_models, name):
    model = cifar_models[name]
    report = cdp.profile(model)
    assert report.totals.params == model.count_params()
    assert report.totals.macs > 0 and report.totals.flops == 2 * report.totals.macs
    assert report.unsupported == []


def test_vgg16_conv_macs_hand_count(cifar_models):
    """The 13 convs of VGG-16-CIFAR: 313.2 M MACs, counted here from the architecture."""
    cfg = [(64, 32), (64, 32), (128, 16), (128, 16), (256, 8), (256, 8), (256, 8),
           (512, 4), (512, 4), (512, 4), (512, 2), (512, 2), (512, 2)]
    macs, c_in = 0, 3
    for c_out, size in cfg:
        macs += 9 * c_in * c_out * size * size
        c_in = c_out
    assert macs == 313_196_544
    layers = cdp.profile(cifar_models["vgg16"]).layers
    assert layers[layers.type == "Conv2D"].macs.sum() == macs


def test_memory_scales_with_bytes_per_element(cifar_models):
    model = cifar_models["alexnet"]
    fp32 = cdp.profile(model).totals.memory_bytes
    assert cdp.profile(model, bytes_per_element="int8").totals.memory_bytes * 4 == fp32
    assert cdp.profile(model, bytes_per_element="fp16").totals.memory_bytes * 2 == fp32


@pytest.mark.parametrize("bad", [0, -4, 2.5, "fp64", True, None])
def test_bad_bytes_per_element(bad):
    with pytest.raises(ValueError, match="bytes_per_element|precision"):
        cdp.profile(toy_cnn(), bytes_per_element=bad)


def test_unknown_layer_counts_its_parameters_and_is_named_once():
    """A layer the counter cannot see inside (here a recurrent layer) keeps count_params() exact,
    says its MACs are not counted, and freezes the channels it touches."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = L.Reshape((64, 4))(x)
    x = L.GRU(5, name="recurrent")(x)
    model = keras.Model(inputs, L.Dense(2)(x))
    with pytest.warns(UserWarning, match="recurrent") as record:
        report = cdp.profile(model)
    assert len([w for w in record if "counted as zero" in str(w.message)]) == 1
    assert report.unsupported == ["recurrent (GRU)"]
    assert report.totals.params == model.count_params()


def test_not_a_model_is_rejected():
    with pytest.raises(TypeError, match="keras.Model"):
        cdp.profile(np.zeros(3))


def test_unbuilt_model_is_rejected():
    with pytest.raises(ValueError, match="keras.Input"):
        cdp.profile(keras.Sequential([L.Dense(3)]))


def test_memory_counts_stored_weights_or_eq5_to_the_letter():
    """Eq. 5 has kernel weights and activations only; by default biases and batch norm count too."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, name="conv")(inputs)  # 6x6x4 output, 3*3*3*4 kernel + 4 biases
    model = keras.Model(inputs, L.BatchNormalization(name="bn")(x))
    kernel, bias, activations, batch_norm = 3 * 3 * 3 * 4, 4, 6 * 6 * 4, 4 * 4
    assert cdp.profile(model).totals.memory_bytes == 4 * (kernel + bias + activations + batch_norm)
    assert cdp.profile(model, memory="eq5").totals.memory_bytes == 4 * (kernel + activations)
    with pytest.raises(ValueError, match="memory must be one of"):
        cdp.profile(model, memory="folded")


def test_mode_total_names_what_each_mode_budgets():
    totals = cdp.profile(toy_cnn()).totals
    assert totals.mode_total("flops") == totals.macs == totals.flops // 2
    assert totals.mode_total("memory") == totals.memory_bytes
    assert totals.of("flops") == totals.mode_total("flops")  # the old name still works
