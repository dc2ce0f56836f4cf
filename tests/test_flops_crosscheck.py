"""An independent check of the MAC counts: TensorFlow's own float-operation count of the traced graph.

``tf.compat.v1.profiler`` counts, for every convolution and matrix-multiply op of a concrete
function's graph, 2 float operations per multiply-accumulate (a multiply and an add). So for those
ops it must report exactly ``2 × profile(...).macs``, layer by layer. Conventions differ elsewhere,
on purpose: TensorFlow also counts bias adds, batch-norm arithmetic and some element-wise ops (one
op per element), which the paper's Eq. 3 (and so ``profile``) leaves out; we compare only the
kernel ops, and show the extras (a bias add is one op per output element). Transposed convs
differ in convention: we count the exact scatter (every input position times a K×K×C_out kernel,
:math:`K^2 C_{in} C_{out} H_{in} W_{in}`); TensorFlow estimates :math:`K^2/s^2` taps per output
position, :math:`K^2 C_{in} C_{out} H_{out} W_{out} / s^2`, which ignores the borders.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers as L

import cdp_tutorial as cdp

KERNEL_OPS = {"Conv2D", "DepthwiseConv2dNative", "MatMul", "Conv3D"}


def tensorflow_float_ops(model) -> dict:
    """``{op type: float operations}`` that TensorFlow's profiler counts for one image."""
    spec = tf.TensorSpec((1, *model.inputs[0].shape[1:]), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    root = tf.compat.v1.profiler.profile(graph=graph, options=options)
    by_type, stack = {}, list(root.children)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        op_type = graph.get_operation_by_name(node.name).type
        by_type[op_type] = by_type.get(op_type, 0) + node.float_ops
    return by_type


def mixed_model():
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, name="conv")(inputs)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = L.SeparableConv2D(6, 3, name="sep")(x)
    x = L.Conv2D(4, 1, name="pointwise")(x)
    x = L.Flatten()(x)
    return keras.Model(inputs, L.Dense(3, name="fc")(x))


@pytest.mark.parametrize("build", [mixed_model, lambda: cdp.models.build_model("mobilenetv2")],
                         ids=["mixed", "mobilenetv2"])
def test_kernel_float_ops_are_twice_our_macs(build):
    model = build()
    tf_ops = tensorflow_float_ops(model)
    kernel = sum(v for k, v in tf_ops.items() if k in KERNEL_OPS)
    assert kernel == 2 * cdp.profile(model).totals.macs


def test_tensorflow_also_counts_bias_adds_one_per_output_element():
    """The convention difference, shown: TF adds one float op per output element for each bias."""
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, name="conv")(inputs)  # with bias: 14*14*8 adds
    model = keras.Model(inputs, x)
    tf_ops = tensorflow_float_ops(model)
    assert tf_ops.get("BiasAdd", 0) == 14 * 14 * 8
    assert tf_ops["Conv2D"] == 2 * cdp.profile(model).totals.macs


def test_transposed_conv_conventions_differ_only_at_the_borders():
    inputs = keras.Input((10, 10, 6))
    model = keras.Model(inputs, L.Conv2DTranspose(4, 3, strides=2, name="up")(inputs))  # 21x21 out
    ours = cdp.profile(model).layers.set_index("name").loc["up", "macs"]
    assert ours == 3 * 3 * 6 * 4 * 10 * 10  # K² C_in C_out H_in W_in
    theirs = tensorflow_float_ops(model)["Conv2DBackpropInput"] / 2
    assert theirs == 3 * 3 * 6 * 4 * 21 * 21 / (2 * 2)  # K² C_in C_out H_out W_out / s²
