"""Tests for cdp_tutorial.models: the four CIFAR networks, their layer names, widths, depth and documented counts."""

import doctest
import importlib
import re

import keras
import numpy as np
import pytest

import cdp_tutorial
from cdp_tutorial import models
from cdp_tutorial.models import (DEPTH_ORDERS, MODELS, alexnet, build_model, droppable_blocks, mobilenetv2,
                                 resnet50, vgg16)
from cdp_tutorial.models import common

# The family modules alexnet and mobilenetv2 share their names with the builders the package re-exports.
vgg_module, alexnet_module, resnet_module, mobilenetv2_module = (
    importlib.import_module(f"cdp_tutorial.models.{family}") for family in ("vgg", "alexnet", "resnet", "mobilenetv2"))

NAMES = list(MODELS)


@pytest.fixture(scope="module")
def full(cifar_models):
    """Every network at full width with 10 classes: conftest's, built once per test session."""
    assert set(cifar_models) == set(MODELS)
    return cifar_models


@pytest.fixture(scope="module")
def quarter():
    """Every network at a quarter of its width, built once for the tests that only read it.

    Building a network costs about a second per hundred layers (ResNet-50 has 175), so the tests that
    compare a shrunk network with its unshrunk self share this one instead of building their own.
    """
    return {name: build_model(name, width_multiplier=0.25) for name in NAMES}


def conv2d_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def layers_of(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


def in_channels(model, layer_name):
    return int(model.get_layer(layer_name).kernel.shape[2])


def macs(model):
    """Multiply-accumulates of Conv2D, DepthwiseConv2D and Dense layers for one image (test oracle)."""
    total = 0
    for layer in model.layers:
        # In Keras 3, DepthwiseConv2D is not a subclass of Conv2D.
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            h, w, c_out = layer.output.shape[1:]
            k_h, k_w = layer.kernel_size
            c_in = 1 if isinstance(layer, keras.layers.DepthwiseConv2D) else layer.input.shape[-1]
            total += h * w * k_h * k_w * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            total += int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return total


# --------------------------------------------------------------------------- every network


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("num_classes", [10, 100])
def test_builds_and_predicts(full, name, num_classes):
    # num_classes changes only the head: the 100-class network is built at a quarter width (faster)
    model = full[name] if num_classes == 10 else build_model(name, num_classes=num_classes, width_multiplier=0.25)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    y = keras.ops.convert_to_numpy(model(x, training=False))
    assert model.name == name
    assert model.output.shape == (None, num_classes)
    assert y.shape == (2, num_classes)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)  # softmax output
    assert model.layers[-1].name == "predictions"


@pytest.mark.parametrize("name", NAMES)
def test_documented_counts_match_the_model(full, name):
    """The parameter and MAC counts written in the docstrings are the measured ones."""
    model = full[name]
    params, mac = f"{model.count_params():,}", f"{macs(model):,}"
    assert params in MODELS[name].__doc__ and mac in MODELS[name].__doc__
    table_row = next(line for line in models.__doc__.splitlines() if line.startswith(f"``{name}``"))
    assert params in table_row.split() and mac in table_row.split()


@pytest.mark.parametrize("module", [models, common, vgg_module, alexnet_module, resnet_module, mobilenetv2_module],
                         ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0 or module is common


def test_the_package_re_exports_every_builder_under_its_old_names():
    """``cdp.models.vgg16(...)`` and ``from cdp_tutorial.models import ...`` keep working after the split."""
    assert cdp_tutorial.models.vgg16 is vgg16
    for name in ["MODELS", "alexnet", "build_model", "mobilenetv2", "resnet50", "vgg16", "VGG16_CFG",
                 "RESNET50_STAGES", "RESNET_EXPANSION", "MOBILENETV2_CFG"]:
        assert name in models.__all__ and hasattr(models, name)


def test_build_model_is_case_insensitive_and_passes_arguments():
    model = build_model("MobileNetV2", num_classes=100, width_multiplier=0.25, name="tiny")
    assert model.name == "tiny"
    assert model.output.shape == (None, 100)
    assert model.get_layer("conv1").filters == 8


# --------------------------------------------------------------------------- layer names


def test_vgg16_layers(full):
    model = full["vgg16"]
    assert [layer.name for layer in conv2d_layers(model)] == [f"conv{i}" for i in range(1, 14)]
    assert [layer.name for layer in layers_of(model, keras.layers.Dense)] == ["fc1", "fc2", "predictions"]
    pools = layers_of(model, keras.layers.MaxPooling2D)
    assert [layer.name for layer in pools] == [f"pool{i}" for i in range(1, 6)]
    for i in range(1, 14):
        assert model.get_layer(f"bn{i}") and model.get_layer(f"relu{i}")
        assert not model.get_layer(f"conv{i}").use_bias
    assert model.get_layer("pool5").output.shape == (None, 1, 1, 512)
    assert [model.get_layer(f"conv{i}").filters for i in range(1, 14)] == [64, 64, 128, 128, 256, 256, 256,
                                                                            512, 512, 512, 512, 512, 512]
    for name in ("fc1_bn", "fc1_relu", "fc2_bn", "fc2_relu", "flatten"):
        model.get_layer(name)


def test_alexnet_layers(full):
    model = full["alexnet"]
    assert [(layer.name, layer.filters, layer.kernel_size) for layer in conv2d_layers(model)] == [
        ("conv1", 64, (5, 5)), ("conv2", 192, (5, 5)), ("conv3", 384, (3, 3)),
        ("conv4", 256, (3, 3)), ("conv5", 256, (3, 3))]
    assert [layer.name for layer in layers_of(model, keras.layers.Dense)] == ["fc1", "fc2", "predictions"]
    # Spatial sizes 32 -> 16 -> 8 -> 4.
    assert [model.get_layer(p).output.shape[1] for p in ("pool1", "pool2", "pool5")] == [16, 8, 4]
    assert model.get_layer("fc1").kernel.shape == (4 * 4 * 256, 1024)
    assert [layer.name for layer in layers_of(model, keras.layers.Dropout)] == ["fc1_dropout", "fc2_dropout"]


def test_resnet50_layers(full):
    model = full["resnet50"]
    convs = conv2d_layers(model)
    assert len(convs) == 53
    shortcuts = [c.name for c in convs if c.name.endswith("_0_conv")]
    assert shortcuts == [f"conv{s}_block1_0_conv" for s in (2, 3, 4, 5)]
    adds = layers_of(model, keras.layers.Add)
    assert len(adds) == 16
    assert adds[0].name == "conv2_block1_add" and adds[-1].name == "conv5_block3_add"
    for layer in convs:
        assert re.fullmatch(r"conv1|conv[2-5]_block\d_[0-3]_conv", layer.name) and not layer.use_bias
    # The stride sits on the 3x3 conv of each stage's first block.
    assert model.get_layer("conv3_block1_2_conv").strides == (2, 2)
    assert model.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert model.get_layer("conv2_block3_out").output.shape == (None, 32, 32, 256)
    assert model.get_layer("conv5_block3_out").output.shape == (None, 4, 4, 2048)
    assert isinstance(model.get_layer("avg_pool"), keras.layers.GlobalAveragePooling2D)


def test_mobilenetv2_layers(full):
    model = full["mobilenetv2"]
    depthwise = layers_of(model, keras.layers.DepthwiseConv2D)
    assert [layer.name for layer in depthwise] == [f"block{i}_depthwise" for i in range(1, 18)]
    assert len(conv2d_layers(model)) == 35
    assert [layer.name for layer in layers_of(model, keras.layers.Add)] == [
        f"block{i}_add" for i in (3, 5, 6, 8, 9, 10, 12, 13, 15, 16)]
    with pytest.raises(ValueError):
        model.get_layer("block1_expand")  # t = 1: no expansion
    assert model.get_layer("block2_expand").filters == 6 * 16
    assert model.get_layer("relu1").max_value == 6.0
    assert model.get_layer("block17_project").filters == 320
    assert model.get_layer("conv_last_relu").output.shape == (None, 4, 4, 1280)
    for name in ("bn1", "block4_expand_bn", "block4_expand_relu", "block4_depthwise_bn",
                 "block4_depthwise_relu", "block4_project_bn", "conv_last_bn", "avg_pool"):
        model.get_layer(name)


# --------------------------------------------------------------------------- widths


def test_vgg16_width_override_changes_one_layer_and_the_next_input(full):
    model = vgg16(widths={"conv3": 100})
    reference = full["vgg16"]
    assert model.get_layer("conv3").filters == 100
    assert in_channels(model, "conv4") == 100
    for i in set(range(1, 14)) - {3}:
        assert model.get_layer(f"conv{i}").filters == reference.get_layer(f"conv{i}").filters


def test_vgg16_accepts_a_sequence_of_13_widths():
    widths = [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 48]
    model = vgg16(widths=widths)
    assert [layer.filters for layer in conv2d_layers(model)] == widths
    assert model.get_layer("fc1").kernel.shape == (48, 512)


def test_alexnet_width_override():
    model = alexnet(widths={"conv1": 20, "conv5": np.int64(128)})  # numpy ints, as a planner may produce
    assert model.get_layer("conv1").filters == 20 and in_channels(model, "conv2") == 20
    assert model.get_layer("fc1").kernel.shape == (4 * 4 * 128, 1024)


def test_resnet50_width_override_inside_a_block_and_tied_widths_changing_together():
    # one full-width ResNet-50 for both kinds of override (each build takes a second or two)
    stage = ["conv2_block1_0_conv"] + [f"conv2_block{b}_3_conv" for b in (1, 2, 3)]
    model = resnet50(widths={"conv3_block2_1_conv": 50, **{name: 128 for name in stage}})
    # inside a block: the conv and the next conv's input change, the next conv's width does not
    assert model.get_layer("conv3_block2_1_conv").filters == 50
    assert in_channels(model, "conv3_block2_2_conv") == 50
    assert model.get_layer("conv3_block2_2_conv").filters == 128
    # tied: the layers feeding stage 2's Adds change together, and so does what reads the stage
    assert model.get_layer("conv2_block3_out").output.shape[-1] == 128
    assert in_channels(model, "conv3_block1_0_conv") == 128


def test_mobilenetv2_expand_follows_its_input_unless_named():
    model = mobilenetv2(widths={"block1_project": 8, "block5_expand": 100})
    assert model.get_layer("block2_expand").filters == 6 * 8
    assert model.get_layer("block5_expand").filters == 100
    assert model.get_layer("block5_depthwise").output.shape[-1] == 100
    assert in_channels(model, "block5_project") == 100


@pytest.mark.parametrize("name", NAMES)
def test_width_multiplier_half_halves_every_conv(full, name):
    model = build_model(name, width_multiplier=0.5)
    expected = {layer.name: max(1, round(layer.filters * 0.5)) for layer in conv2d_layers(full[name])}
    assert {layer.name: layer.filters for layer in conv2d_layers(model)} == expected
    x = np.zeros((1, 32, 32, 3), dtype=np.float32)
    assert model(x, training=False).shape == (1, 10)


@pytest.mark.parametrize("builder", [resnet50, mobilenetv2])
def test_odd_width_multiplier_keeps_residual_networks_buildable(builder):
    model = builder(width_multiplier=0.3)
    assert model.output.shape == (None, 10)


# --------------------------------------------------------------------------- depth and resolution


def conv_names(model):
    return [layer.name for layer in model.layers
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]


@pytest.mark.parametrize("name", NAMES)
def test_dropping_blocks_removes_only_their_layers_and_keeps_the_other_names(quarter, name):
    full_model = quarter[name]
    drops = droppable_blocks(name)[:2]
    shallow = build_model(name, width_multiplier=0.25, drop_blocks=drops)
    removed = set(conv_names(full_model)) - set(conv_names(shallow))
    # Exactly the dropped blocks' convs are gone (a VGG/AlexNet block is one conv; others are prefixes).
    assert removed and all(any(layer == d or layer.startswith(d + "_") for d in drops) for layer in removed)
    assert set(conv_names(shallow)) < set(conv_names(full_model))
    assert cdp_tutorial.profile(shallow).totals.macs < cdp_tutorial.profile(full_model).totals.macs
    x = np.zeros((1, 32, 32, 3), dtype=np.float32)
    assert shallow(x, training=False).shape == (1, 10)


def test_resnet_depth_order_reproduces_edgecompress_depths():
    """EdgeCompress's ResNet-50 D09 is (3, 4, 5, 3) blocks per stage and D08 (3, 3, 4, 3)."""
    def blocks_per_stage(drops):
        model = resnet50(width_multiplier=0.125, drop_blocks=drops)
        names = {layer.name.rsplit("_", 1)[0] for layer in model.layers if layer.name.endswith("_add")}
        return tuple(sum(n.startswith(f"conv{s}_") for n in names) for s in (2, 3, 4, 5))

    assert blocks_per_stage(DEPTH_ORDERS["resnet50"][:1]) == (3, 4, 5, 3)
    assert blocks_per_stage(DEPTH_ORDERS["resnet50"][:3]) == (3, 3, 4, 3)


def test_dropped_block_widths_follow_the_remaining_layers():
    model = mobilenetv2(width_multiplier=0.25, drop_blocks=["block5"], widths={"block6_expand": 40})
    assert model.get_layer("block6_expand").filters == 40
    assert in_channels(model, "block6_expand") == model.get_layer("block4_project").filters
    model = vgg16(width_multiplier=0.25, drop_blocks=["conv13"], widths=[8] * 12)
    assert [layer.filters for layer in conv2d_layers(model)] == [8] * 12


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [24, 16])
def test_lower_input_resolution_builds_and_costs_fewer_macs(quarter, name, size):
    small = build_model(name, width_multiplier=0.25, input_shape=(size, size, 3))
    assert small(np.zeros((1, size, size, 3), dtype=np.float32), training=False).shape == (1, 10)
    assert macs(small) < macs(quarter[name])  # the same network at 32 px


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: build_model("vgg19"),
         r"unknown model 'vgg19'; choose one of: vgg16, alexnet, resnet50, mobilenetv2"),
        (lambda: vgg16(widths={"conv14": 3}), r"unknown conv layer name\(s\) in widths: \['conv14'\]\. "
                                              r"Allowed names: conv1, conv2, .*conv13$"),
        (lambda: mobilenetv2(widths={"block3_depthwise": 8}), r"unknown conv layer .*block3_project"),
        (lambda: vgg16(widths={"conv1": 0}), r"widths\['conv1'\] must be a positive int, got 0"),
        (lambda: alexnet(widths={"conv2": -3}), r"widths\['conv2'\] must be a positive int, got -3"),
        (lambda: resnet50(widths={"conv1": 2.5}), r"widths\['conv1'\] must be a positive int, got 2\.5"),
        (lambda: vgg16(widths=[64] * 12), r"one width per conv layer \(13\), got 12"),
        (lambda: alexnet(widths=[64] * 5), r"widths must be a mapping"),
        (lambda: resnet50(widths={"conv3_block2_3_conv": 256}),
         r"widths break a residual tie\. The layers conv3_block1_0_conv, conv3_block1_3_conv, "
         r"conv3_block2_3_conv, conv3_block3_3_conv, conv3_block4_3_conv feed the same Add layers"),
        (lambda: mobilenetv2(widths={"block4_project": 16}),
         r"residual tie\. The layers block4_project, block5_project, block6_project"),
        (lambda: vgg16(width_multiplier=0), r"width_multiplier must be a finite number > 0"),
        (lambda: resnet50(width_multiplier=-0.5),
         r"width_multiplier must be a finite number > 0 .*, got -0\.5"),
        (lambda: alexnet(num_classes=0), r"num_classes must be a positive int, got 0"),
        (lambda: resnet50(drop_blocks=["conv3_block1"]),
         r"cannot drop \['conv3_block1'\]: only blocks whose input and output shapes are equal"),
        (lambda: mobilenetv2(drop_blocks=["block4"]), r"cannot drop \['block4'\].*Droppable: block3, block5"),
        (lambda: vgg16(drop_blocks="conv2"), r"drop_blocks must be a collection of block names"),
        (lambda: vgg16(drop_blocks=["conv13"], widths={"conv13": 8}), r"unknown conv layer name\(s\)"),
        (lambda: vgg16(input_shape=(32, 32)), r"input_shape must be \(height, width, channels\)"),
    ],
    ids=["model-name", "layer-name", "depthwise-name", "zero", "negative", "fraction", "short-sequence",
         "sequence-not-vgg", "resnet-tie", "mobilenet-tie", "zero-multiplier", "negative-multiplier",
         "num-classes", "resnet-projection-block", "mobilenet-shape-changing-block", "drop-a-string",
         "width-of-a-dropped-layer", "input-shape"],
)
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- saving


@pytest.mark.parametrize("name", NAMES)
def test_saved_model_reloads_with_identical_predictions(quarter, tmp_path, name):
    model = quarter[name]  # the round trip, not the size, is under test: a quarter width saves faster
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=False)),
                                  keras.ops.convert_to_numpy(reloaded(x, training=False)))
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]
